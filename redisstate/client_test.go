package redisstate

import (
	"context"
	"strings"
	"testing"
	"time"

	"keyhole/redisstate/redistest"
)

// waitFor polls cond until it holds or the (generous) deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func open(t *testing.T, o Options) *Client {
	t.Helper()
	c, err := Open(context.Background(), o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestOpenConnects(t *testing.T) {
	plain := redistest.Start(t, redistest.Options{User: "keyhole"})
	tlsSrv := redistest.Start(t, redistest.Options{TLS: true})
	cases := []struct {
		name string
		o    Options
	}{
		{"default user", Options{URL: "redis://:" + plain.Password + "@" + plain.Addr}},
		{"ACL user", Options{URL: plain.URL()}},
		{"TLS under the CA file", Options{URL: tlsSrv.URL(), CAFile: tlsSrv.CAFile}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := open(t, tc.o)
			if err := c.Redis().Set(context.Background(), "k", "v", 0).Err(); err != nil {
				t.Fatalf("SET: %v", err)
			}
			if !c.Healthy() || c.Stale() || c.Ready() != nil {
				t.Fatalf("healthy %v stale %v ready %v", c.Healthy(), c.Stale(), c.Ready())
			}
		})
	}
}

func TestOpenRefuses(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{User: "keyhole"})
	tlsSrv := redistest.Start(t, redistest.Options{TLS: true})
	wrong := "wrong-" + srv.Password
	cases := []struct {
		name, url, caFile, want string
		secret                  string // must not be in the message
	}{
		{"wrong password", "redis://:" + wrong + "@" + srv.Addr, "", "WRONGPASS", wrong},
		{"wrong ACL password", "redis://keyhole:" + wrong + "@" + srv.Addr, "", "check the user and password", wrong},
		{"no password", "redis://" + srv.Addr, "", "NOAUTH", srv.Password},
		{"unreachable", "redis://:" + srv.Password + "@127.0.0.1:1", "", "redis at redis://:xxxxx@127.0.0.1:1", srv.Password},
		{"TLS without the CA", tlsSrv.URL(), "", "certificate", tlsSrv.Password},
		{"plain URL to a TLS server", "redis://:" + tlsSrv.Password + "@" + tlsSrv.Addr, "", "redis at", tlsSrv.Password},
		{"CA file without TLS", srv.URL(), tlsSrv.CAFile, "not rediss://", srv.Password},
		{"bad scheme", "http://:" + srv.Password + "@" + srv.Addr, "", "scheme", srv.Password},
		{"not a URL", "redis://:" + srv.Password + "@[::1", "", "not a URL", srv.Password},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := Open(ctx, Options{URL: tc.url, CAFile: tc.caFile})
			if err == nil {
				c.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), tc.secret) {
				t.Error("the error holds the password")
			}
		})
	}
}

func TestStaleAndRecover(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	c := open(t, Options{URL: srv.URL(), Stale: 2 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	recovered := make(chan struct{}, 1)
	c.OnRecover(func(context.Context) {
		select {
		case recovered <- struct{}{}:
		default:
		}
	})
	go c.Run(ctx, nil)
	srv.Kill()
	waitFor(t, "unhealthy after Redis was killed", 20*time.Second, func() bool { return !c.Healthy() })
	waitFor(t, "stale after the limit", 20*time.Second, c.Stale)
	if c.Ready() == nil {
		t.Fatal("Ready is nil while stale")
	}
	srv.Restart()
	waitFor(t, "healthy after Redis came back", 20*time.Second, func() bool { return c.Healthy() && !c.Stale() })
	select {
	case <-recovered:
	case <-time.After(20 * time.Second):
		t.Fatal("OnRecover was not called")
	}
}

func TestNilClient(t *testing.T) {
	var c *Client
	if c.Stale() || c.Healthy() || c.Ready() != nil {
		t.Fatal("a nil client must be neither stale, healthy nor unready")
	}
}

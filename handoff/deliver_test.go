package handoff

import (
	"context"
	"crypto/x509"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"keyhole/rules"
	"keyhole/secret"
	"keyhole/store"
)

// TestWebhookClient checks the delivery client: TLS verified against the
// given roots, block_private refusing a webhook that resolves to loopback,
// and a resolve pin letting it through.
func TestWebhookClient(t *testing.T) {
	h := newHook(t)
	u, _ := url.Parse(h.srv.URL)
	_, port, _ := net.SplitHostPort(u.Host)
	roots := x509.NewCertPool()
	roots.AddCert(h.srv.Certificate())
	webhook := "https://example.com:" + port + "/alice" // a name in the test certificate
	for _, tc := range []struct {
		name    string
		yaml    string
		roots   *x509.CertPool
		webhook string
		wantErr string // "" means delivered
	}{
		{"pinned", "resolve:\n  example.com: 127.0.0.1\n", roots, webhook, ""},
		{"block_private", "egress:\n  block_private: true\n", roots, h.srv.URL + "/alice", "private"},
		{"unverified TLS", "resolve:\n  example.com: 127.0.0.1\n", x509.NewCertPool(), webhook, "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := rules.LoadData("k.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			sto, err := store.Open(t.TempDir(), "")
			if err != nil {
				t.Fatal(err)
			}
			svc, err := New(Config{State: &FileState{}, Store: sto, Rules: func() *rules.Set { return set },
				Client: NewWebhookClient(tc.roots, func() *rules.Set { return set }), Tries: 2, Backoff: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			before := len(h.deliveries())
			link := secret.FromString("https://keyhole.test/s/abc#the-key")
			err = svc.deliver(context.Background(), &rules.Recipient{Name: "alice", Webhook: tc.webhook}, "share", "text", link, time.Now())
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("got %v, want delivered", err)
			case tc.wantErr == "" && len(h.deliveries()) != before+1:
				t.Fatalf("the webhook received nothing")
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("got %v, want an error about %s", err, tc.wantErr)
			}
			if err != nil && (strings.Contains(err.Error(), "/alice") || strings.Contains(err.Error(), "the-key")) {
				t.Errorf("the error holds the webhook's path or the link")
			}
		})
	}
}

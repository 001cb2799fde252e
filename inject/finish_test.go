package inject

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"

	"keyhole/rules"
	"keyhole/secret"
)

// fakeTokens hands out one token per secret and counts the asks.
type fakeTokens struct {
	values map[string]string
	fail   error
	asked  map[string]int
}

func (f *fakeTokens) Token(_ context.Context, sec *rules.Secret, _ Caller) (secret.Value, error) {
	if f.asked == nil {
		f.asked = map[string]int{}
	}
	f.asked[sec.Name]++
	if f.fail != nil {
		return secret.Value{}, f.fail
	}
	return secret.FromString(f.values[sec.Name]), nil
}

// mintedSet has a token kind, a signing kind and a static secret, all for
// api.github.com.
func mintedSet(t *testing.T) *rules.Set {
	t.Helper()
	host, err := rules.ParseHostPattern("api.github.com")
	if err != nil {
		t.Fatal(err)
	}
	hosts := []rules.HostPattern{host}
	set := &rules.Set{Secrets: map[string]*rules.Secret{
		"GH":     {Name: "GH", Kind: rules.KindGitHubApp, Hosts: hosts},
		"GRAPH":  {Name: "GRAPH", Kind: rules.KindOAuth2, Hosts: hosts},
		"AWS":    {Name: "AWS", Kind: rules.KindAWSSigV4, Hosts: hosts},
		"STATIC": {Name: "STATIC", Hosts: hosts},
	}}
	return set
}

func TestFinish(t *testing.T) {
	basic := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	tokens := map[string]string{"GH": "ghs_installation0123456789", "GRAPH": "graph-access-token-0123"}
	tests := []struct {
		name   string
		header string
		value  string
		want   string
		swap   bool // a Basic credential to swap back
	}{
		{"bearer", "Authorization", "Bearer <<GH>>", "Bearer ghs_installation0123456789", false},
		{"token scheme", "Authorization", "token <<GH>>", "token ghs_installation0123456789", false},
		{"other header", "X-Graph", "<<GRAPH>>", "graph-access-token-0123", false},
		{"two kinds", "X-Both", "<<GH>>:<<GRAPH>>", "ghs_installation0123456789:graph-access-token-0123", false},
		{"git basic", "Authorization", basic("x-access-token:<<GH>>"), basic("x-access-token:ghs_installation0123456789"), true},
		{"signing kind stays", "Authorization", "AWS4-HMAC-SHA256 Credential=<<AWS>>/x", "AWS4-HMAC-SHA256 Credential=<<AWS>>/x", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set := mintedSet(t)
			h := http.Header{tc.header: {tc.value}}
			tgt := Target{Scheme: "https", Host: "api.github.com", Port: 443, Method: "GET", Path: "/", EscapedPath: "/"}
			res, ref := Apply(set, Caller{Agent: "anonymous"}, tgt, h)
			if ref != nil {
				t.Fatalf("Apply refused: %v", ref)
			}
			if len(res.Minted) == 0 {
				t.Fatalf("Minted is empty, want the minted secrets")
			}
			if got := res.Header.Get(tc.header); got != tc.value {
				t.Fatalf("Apply swapped a minted placeholder: got %q", got)
			}
			ft := &fakeTokens{values: tokens}
			if ref := Finish(context.Background(), set, Caller{}, tgt, &res, ft); ref != nil {
				t.Fatalf("Finish refused: %v", ref)
			}
			if got := res.Header.Get(tc.header); got != tc.want {
				t.Errorf("header = %q, want %q", got, tc.want)
			}
			if got := h.Get(tc.header); got != tc.value {
				t.Errorf("Finish modified the agent's header")
			}
			for name, n := range ft.asked {
				if n != 1 {
					t.Errorf("asked for %s %d times, want once", name, n)
				}
			}
			if tc.swap {
				if len(res.SwapBack) != 1 || !res.SwapBack[0].Sent.Equal(strings.TrimPrefix(tc.want, "Basic ")) ||
					res.SwapBack[0].Original != strings.TrimPrefix(tc.value, "Basic ") {
					t.Errorf("SwapBack does not pair the sent credential with the agent's")
				}
			}
		})
	}
}

func TestFinishRefusal(t *testing.T) {
	set := mintedSet(t)
	tgt := Target{Scheme: "https", Host: "api.github.com", Port: 443, Method: "GET", Path: "/", EscapedPath: "/"}
	res, ref := Apply(set, Caller{}, tgt, http.Header{"Authorization": {"Bearer <<GH>>"}})
	if ref != nil {
		t.Fatal(ref)
	}
	ref = Finish(context.Background(), set, Caller{}, tgt, &res, &fakeTokens{fail: errors.New("token endpoint returned 401")})
	if ref == nil {
		t.Fatal("Finish allowed a request whose token could not be minted")
	}
	if ref.Reason != SecretUnavailable || ref.Status() != http.StatusBadGateway || ref.Secret != "GH" || ref.Host != "api.github.com" {
		t.Errorf("got %s %d secret %q host %q, want secret_unavailable 502 GH api.github.com", ref.Reason, ref.Status(), ref.Secret, ref.Host)
	}
	if !strings.Contains(ref.Message, "token endpoint returned 401") {
		t.Errorf("message %q does not name the failed step", ref.Message)
	}
}

// TestApplyChecksMinted: a minted kind is checked like any other secret
// before anything is minted.
func TestApplyChecksMinted(t *testing.T) {
	set := mintedSet(t)
	tgt := Target{Scheme: "https", Host: "evil.example", Port: 443, Method: "GET", Path: "/", EscapedPath: "/"}
	_, ref := Apply(set, Caller{}, tgt, http.Header{"Authorization": {"Bearer <<GH>>"}})
	if ref == nil || ref.Reason != HostNotAllowed {
		t.Fatalf("got %v, want host_not_allowed", ref)
	}
}

package rules

import (
	"strings"
	"testing"
	"time"

	"keyhole/secret"
)

func TestStoredSecret(t *testing.T) {
	v := secret.FromString("sk_stored_value_0123456789")
	s, err := StoredSecret("KEY_0a1b2c3d", "alice", OriginCaptured,
		StoredPolicy{Hosts: []string{"API.example.com"}, Headers: []string{"authorization"}, Methods: []string{"post"}, Paths: []string{"/v1/*"}},
		v, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if s.Owner != "alice" || s.Origin != OriginCaptured || s.Source.String() != "store:KEY_0a1b2c3d" ||
		!s.AllowsHost("api.example.com", 443, 443) || s.Headers[0] != "Authorization" || s.Methods[0] != "POST" || !s.AllowsPath("/v1/x") {
		t.Fatalf("got %+v", s)
	}
	if got, err := s.Value(); err != nil || !got.Equal(v.Reveal()) {
		t.Fatal("the value is not the stored one")
	}
	expired, _ := StoredSecret("KEY_1", "alice", OriginIntake, StoredPolicy{Hosts: []string{"a.example"}}, v, time.Now().Add(-time.Second))
	if _, err := expired.Value(); err == nil || strings.Contains(err.Error(), v.Reveal()) {
		t.Fatalf("an expired stored value: got %v, want an error without the value", err)
	}
	for _, tc := range []struct {
		name, owner string
		pol         StoredPolicy
		want        string
	}{
		{"1KEY", "alice", StoredPolicy{Hosts: []string{"a.example"}}, "not a valid secret name"},
		{"KEY", "", StoredPolicy{Hosts: []string{"a.example"}}, "owner"},
		{"KEY", "alice", StoredPolicy{}, "hosts"},
		{"KEY", "alice", StoredPolicy{Hosts: []string{"a.example/x"}}, "hosts[0]"},
		{"KEY", "alice", StoredPolicy{Hosts: []string{"a.example"}, Headers: []string{"Host"}}, "headers[0]"},
		{"KEY", "alice", StoredPolicy{Hosts: []string{"a.example"}, Paths: []string{"v1"}}, "paths[0]"},
	} {
		if _, err := StoredSecret(tc.name, tc.owner, OriginIntake, tc.pol, v, time.Time{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %q %+v: got %v, want an error about %s", tc.name, tc.owner, tc.pol, err, tc.want)
		}
	}
}

func TestWithStored(t *testing.T) {
	base, err := Parse("x.yaml", []byte("egress:\n  default: deny\nsecrets:\n  KEY:\n    source: env:X\n    hosts: [a.example]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if base.WithStored(nil) != base {
		t.Error("without stored secrets the set itself is returned")
	}
	v := secret.FromString("sk_stored_value_0123456789")
	dup, _ := StoredSecret("KEY", "alice", OriginIntake, StoredPolicy{Hosts: []string{"b.example"}}, v, time.Time{})
	extra, _ := StoredSecret("NEW_1", "alice", OriginIntake, StoredPolicy{Hosts: []string{"b.example"}}, v, time.Time{})
	set := base.WithStored([]*Secret{dup, extra})
	if set.Secrets["KEY"].Owner != "" || set.Secrets["NEW_1"] != extra || len(base.Secrets) != 1 {
		t.Fatal("the rules file's secret must win, the new one be added, and the base be left as it was")
	}
	if set.CheckEgress("b.example", 443, 443) != EgressNotAllowed {
		t.Error("a stored secret's host opened egress")
	}
	if set.CheckEgress("a.example", 443, 443) != EgressAllowed {
		t.Error("the rules file's admission was lost")
	}
}

package rules

import (
	"errors"
	"strings"
	"testing"
	"time"

	"keyhole/secret"
)

func TestValueExpiry(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name    string
		expires time.Time
		wantErr bool
	}{
		{"never", time.Time{}, false},
		{"later", now.Add(time.Hour), false},
		{"past", now.Add(-time.Second), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Secret{Name: "K", Source: EnvSource("K"), value: secret.FromString("value-0123456789"), expires: tc.expires}
			_, err := s.Value()
			if got := err != nil; got != tc.wantErr {
				t.Fatalf("got error %v, want error %v", err, tc.wantErr)
			}
			if err != nil && (!strings.Contains(err.Error(), "env:K") || strings.Contains(err.Error(), "value-0123456789")) {
				t.Errorf("got %q, want the source named and no value", err)
			}
			a := &Agent{Name: "a", Token: EnvSource("T"), token: secret.FromString("tok-0123456789"), expires: tc.expires}
			if got := a.CheckToken("tok-0123456789"); got == tc.wantErr {
				t.Errorf("CheckToken: got %v, want %v", got, !tc.wantErr)
			}
		})
	}
}

func TestRefreshAt(t *testing.T) {
	read := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		life time.Duration
		want time.Duration // after read
	}{
		{"an hour: after two thirds", time.Hour, 40 * time.Minute},
		{"three seconds: a second before the end", 3 * time.Second, 2 * time.Second},
		{"half a second: at once", 500 * time.Millisecond, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := refreshAt(read, read.Add(tc.life)).Sub(read); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestParseReadsNothing checks that Parse touches no source: a set variable
// and an existing file stay unread, and nothing is warned about.
func TestParseReadsNothing(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("KEYHOLE_PURE_TEST", "env-value-0123456789")
	data := "secrets:\n  A:\n    source: env:KEYHOLE_PURE_TEST\n    hosts: [a.example]\n  B:\n    source: file:missing\n    hosts: [b.example]\n" +
		"agents:\n  bot:\n    token: env:KEYHOLE_PURE_TEST\n    secrets: [A]\n"
	s, err := Parse(dir+"/keyhole.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Warnings) != 0 {
		t.Errorf("got warnings %q, want none", s.Warnings)
	}
	for _, name := range []string{"A", "B"} {
		if _, err := s.Secrets[name].Value(); !errors.Is(err, errNotRead) {
			t.Errorf("secret %s: got %v, want errNotRead", name, err)
		}
	}
	if s.Agents["bot"].CheckToken("env-value-0123456789") {
		t.Error("an unread token was accepted")
	}
	loaded, err := LoadData(dir+"/keyhole.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := loaded.Secrets["A"].Value(); err != nil || !v.Equal("env-value-0123456789") {
		t.Errorf("LoadData: secret A not read (error %v)", err)
	}
	if len(loaded.Warnings) != 1 || !strings.Contains(loaded.Warnings[0], "secrets.B.source") {
		t.Errorf("LoadData: got warnings %q, want one for secrets.B.source", loaded.Warnings)
	}
}

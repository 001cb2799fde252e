package rules

import (
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

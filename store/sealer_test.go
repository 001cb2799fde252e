package store

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"keyhole/secret"
)

func TestSealer(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	other := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{8}, 32))
	s := openTest(t, t.TempDir(), key).Sealer()
	e := Entry{Name: "STRIPE", Value: secret.FromString(testValue), Owner: "billing", Created: time.Unix(10, 0).UTC(), Updated: time.Unix(20, 0).UTC()}
	sealed, err := s.SealEntry(e)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte(testValue)) {
		t.Fatal("the sealed entry holds the value")
	}
	got, err := s.OpenEntry("STRIPE", sealed)
	if err != nil {
		t.Fatal(err)
	}
	if got.Value.Reveal() != testValue || got.Origin != OriginSet || got.Owner != "billing" || !got.Created.Equal(e.Created) {
		t.Fatalf("round trip changed the entry: %+v", s.Describe(got))
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	refusals := []struct {
		name, label string
		s           *Sealer
		data        []byte
		want        string
	}{
		{"moved to another name", "OTHER", s, sealed, "fails authentication"},
		{"tampered", "STRIPE", s, tampered, "fails authentication"},
		{"another key", "STRIPE", openTest(t, t.TempDir(), other).Sealer(), sealed, "key"},
		{"not sealed", "STRIPE", s, []byte("plain"), "not a sealed"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.s.OpenEntry(tc.label, tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), testValue) {
				t.Fatal("the error holds the value")
			}
		})
	}
	if _, err := s.SealEntry(Entry{Name: "1bad", Value: secret.FromString("x")}); err == nil {
		t.Error("SealEntry took a bad name")
	}
	if in := s.Describe(got); in.Fingerprint == "" || strings.Contains(in.Fingerprint, testValue) {
		t.Errorf("fingerprint %q", in.Fingerprint)
	}
}

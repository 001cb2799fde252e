package upstream

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"keyhole/rules"
)

func TestResolve(t *testing.T) {
	set, err := rules.Parse("x.yaml", []byte("resolve:\n  db.internal: 127.0.0.1:6543\n"))
	if err != nil {
		t.Fatal(err)
	}
	open, err := rules.Parse("x.yaml", []byte("egress: {block_private: false}\n"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		set     *rules.Set
		host    string
		want    string
		private bool
	}{
		{"pin exempt from block_private", set, "db.internal", "127.0.0.1:6543", false},
		{"loopback refused", set, "127.0.0.1", "", true},
		{"metadata refused", set, "169.254.169.254", "", true},
		{"public allowed", set, "8.8.8.8", "8.8.8.8:5432", false},
		{"block_private off", open, "10.0.0.1", "10.0.0.1:5432", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Resolve(context.Background(), nil, tc.set, tc.host, 5432)
			var pe *PrivateAddressError
			if tc.private {
				if !errors.As(err, &pe) {
					t.Fatalf("got %v, %v; want a PrivateAddressError", got, err)
				}
				return
			}
			if err != nil || len(got) != 1 || got[0] != netip.MustParseAddrPort(tc.want) {
				t.Fatalf("got %v, %v; want %s", got, err, tc.want)
			}
		})
	}
}

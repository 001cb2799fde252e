package proxy

import (
	"net/netip"
	"testing"
)

// TestIsPrivateEmbeddedIPv4 covers every IPv6 form that embeds an IPv4
// address: each is judged by the address it embeds.
func TestIsPrivateEmbeddedIPv4(t *testing.T) {
	tests := []struct {
		name, addr string
		want       bool
	}{
		{"mapped loopback", "::ffff:127.0.0.1", true},
		{"compatible loopback", "::127.0.0.1", true},
		{"compatible private", "::10.0.0.1", true},
		{"compatible metadata", "::169.254.169.254", true},
		{"compatible public", "::8.8.8.8", false},
		{"translated loopback", "::ffff:0:127.0.0.1", true},
		{"translated private", "::ffff:0:192.168.1.1", true},
		{"translated public", "::ffff:0:8.8.8.8", false},
		{"nat64 loopback", "64:ff9b::127.0.0.1", true},
		{"nat64 metadata", "64:ff9b::169.254.169.254", true},
		{"nat64 public", "64:ff9b::8.8.8.8", false},
		{"local-use nat64", "64:ff9b:1::8.8.8.8", true},
		{"6to4 loopback", "2002:7f00:1::1", true},
		{"6to4 private", "2002:c0a8:101::1", true},
		{"6to4 public", "2002:808:808::1", false},
		// Teredo: server 65.54.227.120 public; client inverted in the low bits.
		{"teredo client loopback", "2001:0:4136:e378:8000:63bf:80ff:fffe", true},
		{"teredo client public", "2001:0:4136:e378:8000:63bf:f7f7:f7f7", false},
		{"teredo server private", "2001:0:a00:1:8000:63bf:f7f7:f7f7", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := isPrivate(netip.MustParseAddr(tc.addr)); got != tc.want {
				t.Errorf("isPrivate(%s): got %v, want %v", tc.addr, got, tc.want)
			}
		})
	}
}

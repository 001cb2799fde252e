package upstream

import "net/netip"

var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // CGNAT
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated)
	netip.MustParsePrefix("2001:2::/48"),     // benchmarking
	netip.MustParsePrefix("192.88.99.0/24"),  // 6to4 relay anycast
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
}

var (
	nat64    = netip.MustParsePrefix("64:ff9b::/96")
	v4compat = netip.MustParsePrefix("::/96")           // IPv4-compatible (RFC 4291 §2.5.5.1, deprecated)
	v4transl = netip.MustParsePrefix("::ffff:0:0:0/96") // IPv4-translated (RFC 2765 §2.1)
	sixTo4   = netip.MustParsePrefix("2002::/16")
	teredo   = netip.MustParsePrefix("2001::/32")
	bcastV4  = netip.MustParseAddr("255.255.255.255")
)

// IsPrivate reports whether a is an address keyhole refuses under
// block_private: loopback, RFC 1918 private, link-local (169.254.0.0/16,
// which holds cloud metadata endpoints, and fe80::/10), CGNAT, ULA
// (fc00::/7), multicast, unspecified, reserved ranges, and IPv6 addresses
// that embed such an IPv4 address (IPv4-mapped, IPv4-compatible,
// IPv4-translated, NAT64, 6to4, Teredo): a host that routes or translates
// those forms reaches the embedded IPv4 address.
func IsPrivate(a netip.Addr) bool {
	a = a.Unmap()
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() || a == bcastV4 {
		return true
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return true
		}
	}
	if a.Is6() {
		b := a.As16()
		switch {
		case v4compat.Contains(a), v4transl.Contains(a), nat64.Contains(a):
			return IsPrivate(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
		case sixTo4.Contains(a):
			return IsPrivate(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
		case teredo.Contains(a):
			// Teredo carries the server's address in bits 32-63 and the
			// client's, inverted, in the low bits: either can be reached.
			return IsPrivate(netip.AddrFrom4([4]byte{b[4], b[5], b[6], b[7]})) ||
				IsPrivate(netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]}))
		}
	}
	return false
}

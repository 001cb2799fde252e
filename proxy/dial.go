package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// privateAddressError reports a destination that resolved to an address
// block_private refuses.
type privateAddressError struct {
	host string
	addr netip.Addr
}

func (e *privateAddressError) Error() string {
	return fmt.Sprintf("dial %s: %s is a private, loopback, link-local or otherwise non-public address", e.host, e.addr)
}

// dialer connects to upstreams. It resolves names itself and dials the
// address it checked, so the address block_private judged is the address
// connected to: a DNS answer that changes between check and dial (DNS
// rebinding) cannot slip past. A pin from the rules' resolve section replaces
// resolution and is exempt from block_private.
type dialer struct {
	policy   func() *policy
	resolver *net.Resolver
	net      net.Dialer
}

func newDialer(policy func() *policy, timeout time.Duration) *dialer {
	return &dialer{
		policy:   policy,
		resolver: net.DefaultResolver,
		net:      net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second},
	}
}

// DialContext dials addr ("host:port", host canonical) for the transport.
func (d *dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: bad port", addr)
	}
	targets, err := d.resolve(ctx, host, port)
	if err != nil {
		return nil, err
	}
	var firstErr error
	for _, t := range targets {
		c, err := d.net.DialContext(ctx, "tcp", t.String())
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}

// resolve returns the addresses to try for host on port: the pin, or every
// address the name resolves to, each checked against block_private.
func (d *dialer) resolve(ctx context.Context, host string, port int) ([]netip.AddrPort, error) {
	pol := d.policy()
	if pin, ok := pol.set.LookupPin(host, port); ok {
		return []netip.AddrPort{pin.Target(port)}, nil
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		addrs, err = d.resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, err
		}
		if len(addrs) == 0 {
			return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
		}
	}
	out := make([]netip.AddrPort, 0, len(addrs))
	for _, a := range addrs {
		a = a.Unmap()
		if !pol.set.Egress.AllowPrivate && isPrivate(a) {
			return nil, &privateAddressError{host: host, addr: a}
		}
		out = append(out, netip.AddrPortFrom(a, uint16(port)))
	}
	return out, nil
}

// checkResolves is the CONNECT-time check: it refuses a destination that
// resolves to a refused address before a tunnel opens. The dial-time check
// in resolve still applies to every connection.
func (d *dialer) checkResolves(ctx context.Context, host string, port int) error {
	_, err := d.resolve(ctx, host, port)
	var pe *privateAddressError
	if errors.As(err, &pe) {
		return err
	}
	return nil // other failures surface as upstream_unreachable later
}

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

// isPrivate reports whether a is an address keyhole refuses under
// block_private: loopback, RFC 1918 private, link-local (169.254.0.0/16,
// which holds cloud metadata endpoints, and fe80::/10), CGNAT, ULA
// (fc00::/7), multicast, unspecified, reserved ranges, and IPv6 addresses
// that embed such an IPv4 address (IPv4-mapped, IPv4-compatible,
// IPv4-translated, NAT64, 6to4, Teredo): a host that routes or translates
// those forms reaches the embedded IPv4 address.
func isPrivate(a netip.Addr) bool {
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
			return isPrivate(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
		case sixTo4.Contains(a):
			return isPrivate(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
		case teredo.Contains(a):
			// Teredo carries the server's address in bits 32-63 and the
			// client's, inverted, in the low bits: either can be reached.
			return isPrivate(netip.AddrFrom4([4]byte{b[4], b[5], b[6], b[7]})) ||
				isPrivate(netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]}))
		}
	}
	return false
}

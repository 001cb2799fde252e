// Package upstream decides which addresses keyhole may dial for an upstream
// host: a pin from the rules' resolve section, or every address the name
// resolves to, each refused under block_private when it is loopback,
// private, link-local, CGNAT, ULA, multicast, unspecified or reserved.
//
// The HTTP proxy and the PostgreSQL front both dial through it, so that an
// upstream is judged the same way whatever protocol reaches it, and the
// address judged is the address dialed (a DNS answer that changes between
// check and dial cannot slip past).
package upstream

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"keyhole/rules"
)

// PrivateAddressError reports a destination that resolved to an address
// block_private refuses.
type PrivateAddressError struct {
	Host string
	Addr netip.Addr
}

func (e *PrivateAddressError) Error() string {
	return fmt.Sprintf("dial %s: %s is a private, loopback, link-local or otherwise non-public address", e.Host, e.Addr)
}

// Resolve returns the addresses to try for host (canonical) on port under
// set: the pin for it, or every address the name resolves to through r (nil
// means net.DefaultResolver). A pinned host is exempt from block_private;
// otherwise one refused address refuses the host, with a
// *PrivateAddressError.
func Resolve(ctx context.Context, r *net.Resolver, set *rules.Set, host string, port int) ([]netip.AddrPort, error) {
	if pin, ok := set.LookupPin(host, port); ok {
		return []netip.AddrPort{pin.Target(port)}, nil
	}
	if r == nil {
		r = net.DefaultResolver
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		addrs, err = r.LookupNetIP(ctx, "ip", host)
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
		if !set.Egress.AllowPrivate && IsPrivate(a) {
			return nil, &PrivateAddressError{Host: host, Addr: a}
		}
		out = append(out, netip.AddrPortFrom(a, uint16(port)))
	}
	return out, nil
}

// Dial connects to the first of targets that answers, with d.
func Dial(ctx context.Context, d *net.Dialer, targets []netip.AddrPort) (net.Conn, error) {
	var firstErr error
	for _, t := range targets {
		c, err := d.DialContext(ctx, "tcp", t.String())
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

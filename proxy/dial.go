package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"keyhole/upstream"
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
	return upstream.Dial(ctx, &d.net, targets)
}

// resolve returns the addresses to try for host on port: the pin, or every
// address the name resolves to, each checked against block_private.
func (d *dialer) resolve(ctx context.Context, host string, port int) ([]netip.AddrPort, error) {
	out, err := upstream.Resolve(ctx, d.resolver, d.policy().set, host, port)
	var pe *upstream.PrivateAddressError
	if errors.As(err, &pe) {
		return nil, &privateAddressError{host: pe.Host, addr: pe.Addr}
	}
	return out, err
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

// isPrivate reports whether a is an address keyhole refuses under
// block_private (see upstream.IsPrivate).
func isPrivate(a netip.Addr) bool { return upstream.IsPrivate(a) }

package rules

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// HostPattern matches a destination host and port. It is written as an exact
// name ("api.stripe.com"), a wildcard that matches any subdomain but not the
// name itself ("*.example.com"), or an IP address, each with an optional port
// ("api.example.com:8443", "[::1]:8443"). A pattern without a port matches only
// the default port of the request's scheme (443 for https, 80 for http).
type HostPattern struct {
	// name is the canonical host; for a wildcard it is the suffix with its
	// leading dot (".example.com").
	name     string
	wildcard bool
	port     int // 0: the scheme's default port
}

// ParseHostPattern parses a host pattern. The name is canonicalized as
// CanonicalHost does.
func ParseHostPattern(s string) (HostPattern, error) {
	hostPart, port, err := splitPatternPort(s)
	if err != nil {
		return HostPattern{}, err
	}
	var p HostPattern
	p.port = port
	if rest, ok := strings.CutPrefix(hostPart, "*."); ok {
		name, err := CanonicalHost(rest)
		if err != nil {
			return HostPattern{}, err
		}
		if _, err := netip.ParseAddr(name); err == nil {
			return HostPattern{}, fmt.Errorf("%q: a wildcard cannot precede an IP address", s)
		}
		p.name, p.wildcard = "."+name, true
		return p, nil
	}
	if strings.Contains(hostPart, "*") {
		return HostPattern{}, fmt.Errorf("%q: \"*\" is allowed only as a whole leading label (\"*.example.com\")", s)
	}
	if p.name, err = CanonicalHost(hostPart); err != nil {
		return HostPattern{}, err
	}
	return p, nil
}

func splitPatternPort(s string) (string, int, error) {
	if s == "" {
		return "", 0, errors.New("empty host")
	}
	if err := notURL(s); err != nil {
		return "", 0, err
	}
	// A bare IPv6 address has colons but no port, with or without brackets.
	if _, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		return s, 0, nil
	}
	if !strings.Contains(s, ":") {
		return s, 0, nil
	}
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return "", 0, fmt.Errorf("%q: %s (write an IPv6 address with a port as [::1]:8443)", s, ae.Err)
		}
		return "", 0, fmt.Errorf("%q: %w", s, err)
	}
	port, err := ParsePort(portStr)
	if err != nil {
		return "", 0, fmt.Errorf("%q: %w", s, err)
	}
	return host, port, nil
}

// ParsePort parses a TCP port number between 1 and 65535.
func ParsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 || s[0] == '+' || s[0] == '0' {
		return 0, fmt.Errorf("port %q is not a number between 1 and 65535", s)
	}
	return n, nil
}

// Match reports whether the pattern matches host on port. host must be
// canonical (see CanonicalHost); defaultPort is the port of the request's
// scheme, which a pattern without a port requires.
func (p HostPattern) Match(host string, port, defaultPort int) bool {
	want := p.port
	if want == 0 {
		want = defaultPort
	}
	if port != want {
		return false
	}
	if p.wildcard {
		return len(host) > len(p.name) && strings.HasSuffix(host, p.name)
	}
	return host == p.name
}

// Host returns the pattern's host part ("*.example.com" for a wildcard).
func (p HostPattern) Host() string {
	if p.wildcard {
		return "*" + p.name
	}
	return p.name
}

// String returns the pattern in the form ParseHostPattern accepts.
func (p HostPattern) String() string {
	if p.port == 0 {
		return p.Host()
	}
	return net.JoinHostPort(p.Host(), strconv.Itoa(p.port))
}

// CanonicalHost returns host in the form rules are matched against: lower
// case, without a trailing dot, IP addresses in their standard form without
// brackets or zones. It refuses names that are not plain ASCII host names
// (letters, digits, '-', '_', '.'), so that look-alike Unicode names,
// userinfo, placeholders and other tricks never match a rule, and names
// such as "127.1" that resolvers would read as an IPv4 address.
func CanonicalHost(host string) (string, error) {
	h, bracketed := strings.CutPrefix(host, "[")
	if bracketed {
		if h, bracketed = strings.CutSuffix(h, "]"); !bracketed {
			return "", fmt.Errorf("host %q: unbalanced bracket", host)
		}
	}
	// Only something with a colon or ending in a number can be an address:
	// a valid name's last label is never numeric (see below).
	if bracketed || strings.Contains(h, ":") || (h != "" && endsInNumber(strings.TrimSuffix(h, "."))) {
		if addr, err := netip.ParseAddr(h); err == nil {
			if addr.Zone() != "" {
				return "", fmt.Errorf("host %q: IPv6 zones are not allowed", host)
			}
			if bracketed && !addr.Is6() {
				return "", fmt.Errorf("host %q: brackets hold only IPv6 addresses", host)
			}
			return addr.Unmap().String(), nil
		}
	}
	if bracketed {
		return "", fmt.Errorf("host %q: brackets hold only IPv6 addresses", host)
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return "", fmt.Errorf("host %q: not a valid host name", host)
	}
	label, upper := 0, false
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case 'A' <= c && c <= 'Z':
			upper = true
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		case c == '.':
			if label == 0 {
				return "", fmt.Errorf("host %q: empty label", host)
			}
			label = -1
		case c >= 0x80:
			return "", fmt.Errorf("host %q: non-ASCII names are not allowed (write the xn-- form)", host)
		default:
			return "", fmt.Errorf("host %q: character %q is not allowed in a host name", host, c)
		}
		label++
		if label > 63 {
			return "", fmt.Errorf("host %q: label longer than 63 bytes", host)
		}
	}
	if label == 0 {
		return "", fmt.Errorf("host %q: empty label", host)
	}
	if upper {
		h = strings.ToLower(h)
	}
	if endsInNumber(h) {
		// Resolvers read "127.1" or "0x7f.1" as 127.0.0.1; only the standard
		// dotted form may name an address, so that rules see the real one.
		return "", fmt.Errorf("host %q: a name ending in a number must be an IPv4 address in dotted-decimal form", host)
	}
	return h, nil
}

// endsInNumber reports whether the last label of the host name h is a number
// (decimal, or hexadecimal with 0x), which the WHATWG URL standard and
// inet_aton read as an IPv4 address.
func endsInNumber(h string) bool {
	last := h[strings.LastIndexByte(h, '.')+1:]
	if hex, ok := strings.CutPrefix(last, "0x"); ok {
		return strings.Trim(hex, "0123456789abcdef") == ""
	}
	return strings.Trim(last, "0123456789") == ""
}

package rules

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// The parse functions below turn one list item of the rules file into its
// compiled form, and also return the key under which two items count as
// duplicates.

func parseHost(s string) (HostPattern, string, error) {
	p, err := ParseHostPattern(s)
	return p, p.String(), err
}

// forbiddenHeaders are headers a secret may not travel in: the proxy sets
// them itself, removes them before forwarding (hop-by-hop headers), or they
// frame the message, where a credential would corrupt it.
func forbiddenHeader(canonical string) bool {
	switch canonical {
	case "Host", "Content-Length", "Transfer-Encoding", "Connection",
		"Proxy-Authorization", "Proxy-Authenticate", "Proxy-Connection",
		"Keep-Alive", "Te", "Trailer", "Upgrade":
		return true
	}
	return false
}

func parseHeader(s string) (string, string, error) {
	if !validToken(s) {
		// Not quoted: it may be a whole "Authorization: Bearer ..." line.
		return "", "", errors.New("not a valid header name (want a name such as Authorization)")
	}
	c := http.CanonicalHeaderKey(s)
	if forbiddenHeader(c) {
		return "", "", fmt.Errorf("a secret may not be sent in the %s header", c)
	}
	return c, c, nil
}

func parseMethod(s string) (string, string, error) {
	if !validToken(s) {
		return "", "", fmt.Errorf("%s is not a valid method", brief(s))
	}
	m := strings.ToUpper(s)
	return m, m, nil
}

func parsePath(s string) (PathGlob, string, error) {
	g, err := ParsePathGlob(s)
	return g, s, err
}

// validToken reports whether s is an RFC 9110 token, the syntax of header
// names and methods.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validAgentName reports whether s is an agent name: letters, digits, '.',
// '_' and '-', starting with a letter or digit. It is the user name of a
// Basic credential, so it can hold no ':'.
func validAgentName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// parsePinHost parses a resolve key, "host" or "host:port".
func parsePinHost(s string) (string, int, error) {
	h, port, err := splitPatternPort(s)
	if err != nil {
		return "", 0, err
	}
	if strings.Contains(h, "*") {
		return "", 0, fmt.Errorf("%q: a pin names one host, not a wildcard", s)
	}
	host, err := CanonicalHost(h)
	return host, port, err
}

// parsePinAddr parses a resolve value: an IP address, or IP:port with
// brackets around an IPv6 address. Its port is 0 when it has none.
func parsePinAddr(s string) (netip.Addr, int, error) {
	const want = "want an IP address, or IP:port ([::1]:8443 for IPv6)"
	addr, err := netip.ParseAddr(s)
	port := 0
	if err != nil {
		host, portStr, serr := net.SplitHostPort(s)
		if serr != nil {
			return netip.Addr{}, 0, fmt.Errorf("%q: %s", s, want)
		}
		if addr, err = netip.ParseAddr(host); err != nil {
			return netip.Addr{}, 0, fmt.Errorf("%q: %s", s, want)
		}
		if port, err = ParsePort(portStr); err != nil {
			return netip.Addr{}, 0, fmt.Errorf("%q: %w", s, err)
		}
	}
	if addr.Zone() != "" {
		return netip.Addr{}, 0, fmt.Errorf("%q: IPv6 zones are not allowed", s)
	}
	return addr.Unmap(), port, nil
}

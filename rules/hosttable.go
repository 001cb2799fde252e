package rules

import "slices"

// hostTable tells whether any of many host patterns matches a host and port,
// with one map lookup per label of the host instead of one comparison per
// pattern: the cost of CheckEgress does not grow with the rules file.
type hostTable struct {
	exact  map[string][]int // name → ports (0: the scheme's default)
	suffix map[string][]int // ".example.com" → ports, for "*.example.com"
}

func (t *hostTable) add(p HostPattern) {
	m := &t.exact
	if p.wildcard {
		m = &t.suffix
	}
	if *m == nil {
		*m = make(map[string][]int)
	}
	if !slices.Contains((*m)[p.name], p.port) {
		(*m)[p.name] = append((*m)[p.name], p.port)
	}
}

// match reports whether a pattern in the table matches host on port, as
// HostPattern.Match does.
func (t *hostTable) match(host string, port, defaultPort int) bool {
	if portMatch(t.exact[host], port, defaultPort) {
		return true
	}
	if len(t.suffix) == 0 {
		return false
	}
	// A wildcard's suffix starts at a dot after the first byte: "*.a.com"
	// matches "x.a.com" but not "a.com".
	for i := 1; i < len(host); i++ {
		if host[i] == '.' && portMatch(t.suffix[host[i:]], port, defaultPort) {
			return true
		}
	}
	return false
}

func portMatch(ports []int, port, defaultPort int) bool {
	for _, p := range ports {
		if p == port || p == 0 && port == defaultPort {
			return true
		}
	}
	return false
}

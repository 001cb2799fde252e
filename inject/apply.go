package inject

import (
	"encoding/base64"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"keyhole/rules"
	"keyhole/secret"
)

// Caller is who sends a request.
type Caller struct {
	// Agent is the authenticated agent's name (rules.AnonymousAgent when the
	// rules have no agents section).
	Agent string
	// Rule is the agent's entry in the rules; nil for the anonymous agent,
	// which may use every secret.
	Rule *rules.Agent
	// Token narrows what the caller may do when it authenticated with a
	// minted token; nil when it did not.
	Token Narrowing
}

// Narrowing is what Apply needs of a minted token's grant.
type Narrowing interface {
	AllowsSecret(name string) bool
}

// Target is where a request goes and how.
type Target struct {
	Scheme string // "https" or "http"
	Host   string // canonical host (rules.CanonicalHost)
	Port   int
	Method string
	// Path is the decoded URL path the upstream will see; EscapedPath is
	// its wire form (url.URL.EscapedPath), checked for tricks that could
	// make the upstream see a different path than the rule did.
	Path, EscapedPath string
}

// DefaultPort returns the default port of the target's scheme.
func (t Target) DefaultPort() int {
	if t.Scheme == "http" {
		return 80
	}
	return 443
}

// HostPort returns the host as a URL writes it: with the port when it is
// not the scheme's default, and an IPv6 address in brackets.
func (t Target) HostPort() string {
	if t.Port == t.DefaultPort() || t.Port == 0 {
		if strings.Contains(t.Host, ":") {
			return "[" + t.Host + "]"
		}
		return t.Host
	}
	return net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
}

// Result is what Apply decided for an allowed request.
type Result struct {
	// Header is the header to send upstream: the request's own header when
	// it held no placeholder, otherwise a copy with every placeholder
	// swapped. The request's header is never modified.
	Header http.Header
	// Secrets lists the names of the secrets injected, sorted, without
	// duplicates; nil when none were.
	Secrets []string
	// SwapBack lists the Basic credentials Apply rewrote: a response must
	// show the agent its own credential, not the one sent upstream.
	SwapBack []SwapBack
	// Minted lists the names of the secrets, among Secrets, whose kind is
	// not static (sorted, without duplicates; nil when none). Apply checked
	// them like any other but left their placeholders in Header: Finish
	// swaps the tokens in, and a signer re-signs the request, once the
	// request is known to be allowed.
	Minted []string
}

// SwapBack pairs a Basic credential sent upstream with the one the agent
// sent. Sent holds a real secret and redacts itself.
type SwapBack struct {
	Sent     secret.Value // base64 as sent upstream
	Original string       // base64 as the agent sent it
}

// maxPlaceholdersPerRequest bounds the work one request can ask for.
const maxPlaceholdersPerRequest = 256

// Apply decides whether a request with header h may go to t, and swaps its
// placeholders for their secrets. It returns a *Refusal, and nothing to
// send, when any placeholder fails any check; it never modifies h.
func Apply(set *rules.Set, c Caller, t Target, h http.Header) (Result, *Refusal) {
	var buf [8]string
	names := candidateHeaders(buf[:0], h)
	if len(names) == 0 {
		return Result{Header: h}, nil
	}
	// Sorted, so that a request with several faults always gets the same
	// refusal.
	slices.Sort(names)
	a := applier{set: set, caller: c, target: t, header: h}
	var out http.Header
	for _, name := range names {
		vs := h[name]
		var swapped []string
		for i, v := range vs {
			nv, ref := a.value(name, v)
			if ref != nil {
				return Result{}, ref
			}
			if nv != v {
				if swapped == nil {
					swapped = slices.Clone(vs)
				}
				swapped[i] = nv
			}
		}
		if swapped != nil {
			if out == nil {
				// The other headers' values are shared, never written.
				out = maps.Clone(h)
			}
			out[name] = swapped
		}
	}
	if out == nil && a.minted == nil {
		return Result{Header: h}, nil
	}
	if out == nil {
		out = h
	}
	slices.Sort(a.secrets)
	res := Result{Header: out, Secrets: slices.Compact(a.secrets), SwapBack: a.swapBack}
	if a.minted != nil {
		slices.Sort(a.minted)
		res.Minted = slices.Compact(a.minted)
	}
	return res, nil
}

// candidateHeaders appends to names the names of the headers with a value
// that could hold a placeholder, directly or inside a Basic credential.
func candidateHeaders(names []string, h http.Header) []string {
	for name, vs := range h {
		for _, v := range vs {
			if strings.Contains(v, "<<") || name == "Authorization" && isBasic(v) {
				names = append(names, name)
				break
			}
		}
	}
	return names
}

type applier struct {
	set      *rules.Set
	caller   Caller
	target   Target
	header   http.Header // the request's, for checks across headers
	count    int
	secrets  []string
	swapBack []SwapBack
	minted   []string
}

// value checks and swaps the placeholders of one header value.
func (a *applier) value(header, v string) (string, *Refusal) {
	if header == "Authorization" && isBasic(v) {
		if nv, ok, ref := a.basic(header, v); ok || ref != nil {
			return nv, ref
		}
	}
	var buf [4]Placeholder
	ps := appendPlaceholders(buf[:0], v)
	if len(ps) == 0 {
		return v, nil
	}
	return a.swapChecked(header, v, ps)
}

func (a *applier) swapChecked(header, v string, ps []Placeholder) (string, *Refusal) {
	a.count += len(ps)
	if len(ps) > maxPlaceholders || a.count > maxPlaceholdersPerRequest {
		return "", Refuse(BadRequest, "", a.target.Host,
			"too many placeholders in one request (at most %d a header value, %d a request)",
			maxPlaceholders, maxPlaceholdersPerRequest)
	}
	var buf [4]string
	values := buf[:0]
	for _, p := range ps {
		val, ref := a.check(p.Name, header)
		if ref != nil {
			return "", ref
		}
		values = append(values, val)
		a.secrets = append(a.secrets, p.Name) // Apply sorts and compacts
	}
	return swap(v, ps, values), nil
}

// isBasic reports whether an Authorization value uses the Basic scheme.
func isBasic(v string) bool {
	return len(v) > 6 && strings.EqualFold(v[:6], "basic ")
}

// basic swaps placeholders inside a Basic credential's decoded
// user:password and re-encodes it. ok is false when the value is not a
// decodable credential holding a placeholder; the caller then treats it as
// an opaque value.
func (a *applier) basic(header, v string) (string, bool, *Refusal) {
	enc := strings.TrimLeft(v[6:], " ")
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", false, nil
	}
	decoded := string(raw)
	var buf [4]Placeholder
	ps := appendPlaceholders(buf[:0], decoded)
	if len(ps) == 0 {
		return "", false, nil
	}
	swapped, ref := a.swapChecked(header, decoded, ps)
	if ref != nil {
		return "", false, ref
	}
	sent := base64.StdEncoding.EncodeToString([]byte(swapped))
	a.swapBack = append(a.swapBack, SwapBack{Sent: secret.FromString(sent), Original: enc})
	return v[:6] + sent, true, nil
}

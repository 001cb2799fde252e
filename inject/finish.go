package inject

import (
	"context"
	"encoding/base64"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"

	"keyhole/rules"
	"keyhole/secret"
)

// Tokens supplies the current access token of a secret whose kind mints
// bearer tokens (oauth2, github_app). The proxy passes one to Finish; inject
// itself does no network I/O.
type Tokens interface {
	// Token returns the token to send for sec on behalf of c. Its error
	// says which step of minting failed and never holds a credential.
	Token(ctx context.Context, sec *rules.Secret, c Caller) (secret.Value, error)
}

// IsToken reports whether a secret of kind k is swapped for a token by
// Finish (oauth2, github_app), rather than pasted (static) or signed
// (aws_sigv4).
func IsToken(k rules.CredentialKind) bool { return k == rules.KindOAuth2 || k == rules.KindGitHubApp }

// Finish swaps the placeholders of res.Minted's token kinds in res.Header
// for tokens from tokens, in plain header values and inside Basic
// credentials (git's "x-access-token:<<GITHUB>>"), re-encoding those and
// recording each in res.SwapBack. It is called only after Apply allowed the
// request, so a refusal from Finish is always 502 secret_unavailable. It
// asks tokens once per secret, and never modifies the header Apply was
// given: it writes to a copy. Placeholders of other kinds stay.
func Finish(ctx context.Context, set *rules.Set, c Caller, t Target, res *Result, tokens Tokens) *Refusal {
	want := map[string]secret.Value{}
	for _, name := range res.Minted {
		if sec := set.Secrets[name]; sec != nil && IsToken(sec.Kind) {
			want[name] = secret.Value{}
		}
	}
	if len(want) == 0 {
		return nil
	}
	f := finisher{ctx: ctx, set: set, caller: c, host: t.Host, tokens: tokens, values: want, res: res}
	var out http.Header
	// Sorted, so that a request with several failing tokens always gets
	// the same refusal.
	for _, name := range slices.Sorted(maps.Keys(res.Header)) {
		vs := res.Header[name]
		var swapped []string
		for i, v := range vs {
			nv, ref := f.value(name, v)
			if ref != nil {
				return ref
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
				out = maps.Clone(res.Header)
			}
			out[name] = swapped
		}
	}
	if out != nil {
		res.Header = out
	}
	return nil
}

type finisher struct {
	ctx    context.Context
	set    *rules.Set
	caller Caller
	host   string
	tokens Tokens
	values map[string]secret.Value // the token secrets; zero until fetched
	res    *Result
}

// value swaps the token placeholders of one header value.
func (f *finisher) value(header, v string) (string, *Refusal) {
	if header == "Authorization" && isBasic(v) {
		enc := strings.TrimLeft(v[6:], " ")
		if raw, err := base64.StdEncoding.DecodeString(enc); err == nil {
			decoded := string(raw)
			swapped, ref := f.swap(header, decoded)
			if ref != nil || swapped == decoded {
				return v, ref
			}
			sent := base64.StdEncoding.EncodeToString([]byte(swapped))
			f.swappedBasic(enc, sent)
			return v[:6] + sent, nil
		}
	}
	return f.swap(header, v)
}

// swappedBasic records that the Basic credential enc became sent. When
// Apply had already rewritten it (it held a static secret too), the agent's
// original is the one Apply recorded.
func (f *finisher) swappedBasic(enc, sent string) {
	for i, sb := range f.res.SwapBack {
		if sb.Sent.Equal(enc) {
			f.res.SwapBack[i].Sent = secret.FromString(sent)
			return
		}
	}
	f.res.SwapBack = append(f.res.SwapBack, SwapBack{Sent: secret.FromString(sent), Original: enc})
}

// swap replaces the token placeholders in s, a value of header. Apply
// checked every placeholder the agent wrote; one that a static secret's
// value brought in is swapped only where the token may go too.
func (f *finisher) swap(header, s string) (string, *Refusal) {
	ps := FindPlaceholders(s)
	var keep []Placeholder
	var values []string
	for _, p := range ps {
		v, ok := f.values[p.Name]
		if !ok || !f.set.Secrets[p.Name].AllowsHeader(header) {
			continue
		}
		if v.IsZero() {
			sec := f.set.Secrets[p.Name]
			tok, err := f.tokens.Token(f.ctx, sec, f.caller)
			if err == nil && tok.IsZero() {
				err = errors.New("the token endpoint returned an empty token")
			}
			if err != nil {
				return "", Refuse(SecretUnavailable, p.Name, f.host,
					"secret %s is unavailable right now: %v", p.Name, err)
			}
			v = tok
			f.values[p.Name] = tok
		}
		keep = append(keep, p)
		values = append(values, v.Reveal())
	}
	if keep == nil {
		return s, nil
	}
	return swap(s, keep, values), nil
}

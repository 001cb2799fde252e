package inject

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

func TestApplyBasic(t *testing.T) {
	set := newTestSet(t)
	u, p := testValues["DB_USER"], testValues["DB_PASS"]
	enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name        string
		in          string
		wantPrefix  string // the scheme as written
		wantCred    string // the decoded credential sent
		wantSecrets []string
	}{
		{"user", basic("<<DB_USER>>:hunter2"), "Basic ", u + ":hunter2", []string{"DB_USER"}},
		{"password", basic("alice:<<DB_PASS>>"), "Basic ", "alice:" + p, []string{"DB_PASS"}},
		{"both", basic("<<DB_USER>>:<<DB_PASS>>"), "Basic ", u + ":" + p, []string{"DB_PASS", "DB_USER"}},
		{"both with text", basic("u-<<DB_USER>>-x:p<<DB_PASS>><<DB_PASS>>!"), "Basic ",
			"u-" + u + "-x:p" + p + p + "!", []string{"DB_PASS", "DB_USER"}},
		{"colon in password", basic("alice:a:<<DB_PASS>>:b"), "Basic ", "alice:a:" + p + ":b", []string{"DB_PASS"}},
		{"empty user", basic(":<<DB_PASS>>"), "Basic ", ":" + p, []string{"DB_PASS"}},
		{"no colon", basic("<<DB_PASS>>"), "Basic ", p, []string{"DB_PASS"}},
		{"lower-case scheme", "basic " + enc("<<DB_USER>>:pw"), "basic ", u + ":pw", []string{"DB_USER"}},
		{"upper-case scheme", "BASIC " + enc("<<DB_USER>>:pw"), "BASIC ", u + ":pw", []string{"DB_USER"}},
		{"spaces after scheme", "Basic    " + enc("alice:<<DB_PASS>>"), "Basic ", "alice:" + p, []string{"DB_PASS"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := header("Authorization", tc.in, "Accept", "*/*")
			before := h.Clone()
			res, ref := Apply(set, Caller{Agent: "anonymous"}, target(t, "GET", "https://db.example.com/"), h)
			if ref != nil {
				t.Fatalf("got refusal %s: %s, want none", ref.Reason, ref.Message)
			}
			assertHeaderEqual(t, h, before)
			out := res.Header.Get("Authorization")
			if !strings.HasPrefix(out, tc.wantPrefix) {
				t.Errorf("got scheme %q, want %q", out[:min(len(out), 6)], tc.wantPrefix)
			}
			if got, ok := decodeBasic(out); !ok || got != tc.wantCred {
				assertNoValue(t, "decoded credential", got)
				t.Errorf("got a sent credential that decodes (%v) to %d bytes, want the swapped %d bytes", ok, len(got), len(tc.wantCred))
			}
			if got := res.Header.Get("Accept"); got != "*/*" {
				t.Errorf("got Accept %q, want %q", got, "*/*")
			}
			if fmt.Sprint(res.Secrets) != fmt.Sprint(tc.wantSecrets) {
				t.Errorf("got secrets %v, want %v", res.Secrets, tc.wantSecrets)
			}
			if len(res.SwapBack) != 1 {
				t.Fatalf("got %d swap-back pairs, want 1", len(res.SwapBack))
			}
			sb := res.SwapBack[0]
			if got, want := sb.Original, strings.TrimLeft(tc.in[6:], " "); got != want {
				t.Errorf("got Original %q, want the agent's %q", got, want)
			}
			if !sb.Sent.Equal(out[6:]) {
				t.Errorf("got Sent of %d bytes, want the %d bytes sent upstream", sb.Sent.Len(), len(out)-6)
			}
			if raw, err := base64.StdEncoding.DecodeString(sb.Sent.Reveal()); err != nil || string(raw) != tc.wantCred {
				t.Errorf("got Sent that decodes (err %v) to %d bytes, want the real credential of %d bytes", err, len(raw), len(tc.wantCred))
			}
			assertNoValue(t, "printed swap-back pairs", fmt.Sprintf("%v %+v %#v", res.SwapBack, res.SwapBack, res.SwapBack))
		})
	}
}

// TestApplyBasicOpaque checks Basic values that do not decode: their
// placeholders are swapped as in any other value, and nothing is swapped
// back.
func TestApplyBasicOpaque(t *testing.T) {
	set := newTestSet(t)
	u, p := testValues["DB_USER"], testValues["DB_PASS"]
	tests := []struct {
		name, in, want string
	}{
		{"placeholder as credential", "Basic <<DB_PASS>>", "Basic " + p},
		{"raw user:pass", "Basic <<DB_USER>>:<<DB_PASS>>", "Basic " + u + ":" + p},
		{"bad padding", "Basic YWxp=<<DB_PASS>>", "Basic YWxp=" + p},
		{"scheme only", "Basic", "Basic"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, ref := Apply(set, Caller{Agent: "anonymous"}, target(t, "GET", "https://db.example.com/"), header("Authorization", tc.in))
			if ref != nil {
				t.Fatalf("got refusal %s: %s, want none", ref.Reason, ref.Message)
			}
			if got := res.Header.Get("Authorization"); got != tc.want {
				assertNoValue(t, "Authorization", strings.ReplaceAll(strings.ReplaceAll(got, u, "<<DB_USER>>"), p, "<<DB_PASS>>"))
				t.Errorf("got a value of %d bytes, want %d bytes", len(got), len(tc.want))
			}
			if res.SwapBack != nil {
				t.Errorf("got %d swap-back pairs, want none", len(res.SwapBack))
			}
		})
	}
}

// FuzzBasic builds a Basic credential from user and pass, with placeholders
// added as mask says, and checks that Apply either refuses it for the first
// placeholder it may not swap, or sends a credential that decodes to the
// swapped user:pass and swaps back to the agent's. It then feeds raw to Apply
// as an arbitrary Authorization value.
func FuzzBasic(f *testing.F) {
	f.Add("<<DB_USER>>", "<<DB_PASS>>", uint8(0), "Basic PDxEQl9VU0VSPj46PDxEQl9QQVNTPj4=")
	f.Add("alice", "x<<DB_PASS>>y", uint8(1), "basic <<DB_PASS>>")
	f.Add("a:b", "", uint8(15), "Basic")
	f.Add("<<<DB_USER>>>", "<<1>>", uint8(4), "Bearer <<DB_USER>>")
	set := newTestSet(f)
	tgt := Target{Scheme: "https", Host: "db.example.com", Port: 443, Method: "GET", Path: "/", EscapedPath: "/"}
	allowed := map[string]bool{"DB_USER": true, "DB_PASS": true}
	f.Fuzz(func(t *testing.T, user, pass string, mask uint8, raw string) {
		if mask&1 != 0 {
			user = "<<DB_USER>>" + user
		}
		if mask&2 != 0 {
			pass += "<<DB_PASS>>"
		}
		if mask&4 != 0 {
			user += "<<NOPE>>"
		}
		if mask&8 != 0 {
			pass = "<<STRIPE_LIVE>>" + pass
		}
		cred := user + ":" + pass
		enc := base64.StdEncoding.EncodeToString([]byte(cred))
		res, ref := Apply(set, Caller{Agent: "anonymous"}, tgt, header("Authorization", "Basic "+enc))
		ps := FindPlaceholders(cred)
		var faulty string
		for _, p := range ps {
			if !allowed[p.Name] {
				faulty = p.Name
				break
			}
		}
		switch {
		case len(ps) > maxPlaceholders:
			if ref == nil || ref.Reason != BadRequest {
				t.Fatalf("%d placeholders: got %v, want a refusal for bad_request", len(ps), ref)
			}
		case faulty != "":
			want := faulty
			if len(want) > maxNameInMessage {
				want = want[:maxNameInMessage] + "..."
			}
			if ref == nil || ref.Secret != want {
				t.Fatalf("got refusal %v, want one for secret %s", ref, want)
			}
		case ref != nil:
			t.Fatalf("got refusal %s: %s, want none", ref.Reason, ref.Message)
		case len(ps) == 0:
			if res.Secrets != nil || res.SwapBack != nil || res.Header.Get("Authorization") != "Basic "+enc {
				t.Fatalf("credential without placeholders: got secrets %v, want it untouched", res.Secrets)
			}
		default:
			checkBasicSent(t, res, cred, enc)
		}
		if ref != nil {
			assertNoValue(t, "refusal message", ref.Message)
		}

		res, ref = Apply(set, Caller{Agent: "anonymous"}, tgt, header("Authorization", raw))
		if ref != nil {
			assertNoValue(t, "refusal message", ref.Message)
			return
		}
		out := res.Header.Get("Authorization")
		exposed := []string{out}
		if decoded, ok := decodeBasic(out); ok {
			exposed = append(exposed, decoded)
		}
		for _, s := range exposed {
			for _, p := range FindPlaceholders(s) {
				if _, known := testValues[p.Name]; known {
					t.Fatalf("sent a value holding placeholder %s", p.Name)
				}
			}
		}
	})
}

// checkBasicSent checks the credential Apply sent for the agent's cred,
// base64 enc.
func checkBasicSent(t *testing.T, res Result, cred, enc string) {
	t.Helper()
	out := res.Header.Get("Authorization")
	got, ok := decodeBasic(out)
	if want := swapKnown(cred); !ok || got != want {
		t.Fatalf("got a sent credential that decodes (%v) to %d bytes, want the swapped %d bytes", ok, len(got), len(want))
	}
	if ps := FindPlaceholders(got); ps != nil {
		t.Fatalf("sent credential holds placeholder %s", ps[0].Name)
	}
	if len(res.SwapBack) != 1 || res.SwapBack[0].Original != enc || !res.SwapBack[0].Sent.Equal(out[6:]) {
		t.Fatalf("got %d swap-back pairs, want one from the sent credential to the agent's", len(res.SwapBack))
	}
}

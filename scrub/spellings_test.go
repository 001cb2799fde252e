package scrub

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"keyhole/secret"
)

// awsKey holds / and +, like many AWS secret keys.
const awsKey = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

func awsReplacer() *Replacer {
	return Compile([]Secret{{Name: "AWS", Value: secret.FromString(awsKey)}})
}

// eachChar writes every byte of s with f.
func eachChar(s string, f func(c byte) string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteString(f(s[i]))
	}
	return b.String()
}

// wrapLines cuts s into lines of n characters ended by eol, as MIME,
// base64.encodebytes and openssl do.
func wrapLines(s string, n int, eol string) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n] + eol)
		s = s[n:]
	}
	b.WriteString(s + eol)
	return b.String()
}

// TestSpellings checks the spellings that other implementations emit and
// that decode to the whole value, each inside the text around it.
func TestSpellings(t *testing.T) {
	phpJSON := strings.ReplaceAll(awsKey, "/", `\/`)
	pyQuote := strings.NewReplacer("+", "%2B").Replace(awsKey) // quote() keeps /
	allU := eachChar(awsKey, func(c byte) string { return fmt.Sprintf(`\u%04X`, c) })
	allULower := eachChar(awsKey, func(c byte) string { return fmt.Sprintf(`\u%04x`, c) })
	allPct := eachChar(awsKey, func(c byte) string { return fmt.Sprintf("%%%02x", c) })
	n := 0
	mixed := eachChar(awsKey, func(c byte) string {
		n++
		switch n % 4 {
		case 0:
			return fmt.Sprintf(`\u%04x`, c)
		case 1:
			return fmt.Sprintf("%%%02X", c)
		case 2:
			return fmt.Sprintf("%%%02x", c)
		}
		return string(c)
	})
	// A 40-byte key at offset 17 of a larger blob, so that the line
	// breaks fall inside its base64 form.
	blob := base64.StdEncoding.EncodeToString([]byte("certificate body:" + awsKey + " and more text after it"))
	tests := []struct {
		name, in string
	}{
		{"php json_encode", `{"key":"` + phpJSON + `"}`},
		{"every character \\uXXXX", `{"key":"` + allU + `"}`},
		{"every character \\uxxxx", `{"key":"` + allULower + `"}`},
		{"every byte percent-encoded, lower hex", "k=" + allPct + "&"},
		{"python quote", "/v1/" + pyQuote + "?x=1"},
		{"mixed escapes and hex case", "k=" + mixed + "&"},
		{"percent inside json", `{"next":"https://x.test/?k=` + strings.ReplaceAll(url.QueryEscape(awsKey), "/", `\/`) + `"}`},
		{"base64 at 76 columns, LF", wrapLines(blob, 76, "\n")},
		{"base64 at 76 columns, CRLF", wrapLines(blob, 76, "\r\n")},
		{"base64 at 64 columns (openssl)", wrapLines(blob, 64, "\n")},
		{"base64 cut every 5 characters", wrapLines(blob, 5, "\r\n")},
		{"base64 with json \\/", strings.ReplaceAll(blob, "/", `\/`)},
	}
	r := awsReplacer()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !decodesToKey(tc.in) {
				t.Fatal("the test input does not decode to the key")
			}
			got, c := r.ReplaceString(tc.in)
			if c == 0 || decodesToKey(got) {
				t.Errorf("got %d replacements, and the output still decodes to the key", c)
			}
			rd := r.NewReader(&chunkReader{data: []byte(tc.in), sizes: []int{1, 3, 7}})
			streamed, err := readAllSized(rd, 5)
			if err != nil || string(streamed) != got {
				t.Errorf("streamed: error %v; %s", err, describeDiff(streamed, []byte(got)))
			}
		})
	}
}

// decodesToKey reports whether s holds awsKey after JSON unescaping, URL
// unescaping, or base64 decoding with line breaks removed, as a reader
// of s may decode it.
func decodesToKey(s string) bool {
	cands := []string{s}
	var js string
	if json.Unmarshal([]byte(`"`+strings.ReplaceAll(s, `"`, `\"`)+`"`), &js) == nil {
		cands = append(cands, js)
	}
	var obj map[string]string
	if json.Unmarshal([]byte(s), &obj) == nil {
		for _, v := range obj {
			cands = append(cands, v)
		}
	}
	for _, c := range slicesClone(cands) {
		if u, err := url.QueryUnescape(strings.ReplaceAll(c, "+", "%2B")); err == nil {
			cands = append(cands, u)
		}
		if u, err := url.PathUnescape(c); err == nil {
			cands = append(cands, u)
		}
		flat := strings.NewReplacer("\r", "", "\n", "", `\/`, "/").Replace(c)
		if d, err := base64.StdEncoding.DecodeString(flat); err == nil {
			cands = append(cands, string(d))
		}
	}
	for _, c := range cands {
		if strings.Contains(c, awsKey) {
			return true
		}
	}
	return false
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

// TestHeaderObsFold checks a header value folded in the middle of the
// value, which net/http unfolds into "first half SP second half".
func TestHeaderObsFold(t *testing.T) {
	r := awsReplacer()
	for _, v := range []string{
		awsKey[:17] + " " + awsKey[17:],
		"Bearer realm=x, key=" + awsKey[:3] + " " + awsKey[3:],
		url.QueryEscape(awsKey)[:20] + " " + url.QueryEscape(awsKey)[20:],
	} {
		h := http.Header{"X-Echo": {v}, "X-Other": {"a b c"}}
		r.scrubHeader(h, nil)
		if got := strings.ReplaceAll(h.Get("X-Echo"), " ", ""); decodesToKey(got) || !strings.Contains(got, "<<AWS>>") {
			t.Errorf("got %s, want the value scrubbed", redact(h.Get("X-Echo"), awsKey))
		}
		if h.Get("X-Other") != "a b c" {
			t.Errorf("got X-Other %q, want it untouched", h.Get("X-Other"))
		}
	}
}

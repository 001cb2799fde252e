package redisstate

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParseURL: KEYHOLE_REDIS_URL is parsed without panicking, and no
// error repeats the URL's password.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"redis://:pw-12345678@127.0.0.1:6379/0", "rediss://user:pw-12345678@host:6380", "redis://host",
		"redis://:pw-12345678@[::1", "http://:pw-12345678@host", "redis://:pw-12345678@host/notadb", "redis://:pw%zz@host",
		"redis://u:pw-12345678@host:99999", "", "redis://:pw-12345678@/0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		opts, where, err := parseURL(raw)
		pw := ""
		if u, perr := url.Parse(raw); perr == nil {
			pw, _ = u.User.Password()
		}
		// A password that appears elsewhere in the URL, or in the fixed
		// texts, may rightly be quoted: check distinctive ones only.
		if len(pw) < 8 || strings.Count(raw, pw) != 1 || strings.Trim(pw, "x") == "" {
			pw = ""
		}
		if err != nil {
			if pw != "" && strings.Contains(err.Error(), pw) {
				t.Fatal("the error repeats the password")
			}
			return
		}
		if opts == nil {
			t.Fatal("no options and no error")
		}
		if pw != "" && strings.Contains(where, pw) {
			t.Fatal("the redacted URL holds the password")
		}
	})
}

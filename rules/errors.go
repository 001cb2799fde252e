package rules

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Error is one problem in a rules file, placed at the line of the offending
// key, value or list item. Its message never holds a secret value.
type Error struct {
	// File is the rules file's path as given to Load or Parse.
	File string
	// Line is the 1-based line of the problem.
	Line int
	// Field is the dotted path of the offending field, such as
	// "secrets.STRIPE_LIVE.hosts[1]" or `resolve."api.stripe.com"`. It is
	// empty for a problem of the file as a whole, such as a YAML syntax
	// error.
	Field string
	// Msg says what is wrong.
	Msg string
}

// Error returns "FILE:LINE: FIELD: MSG", or "FILE:LINE: MSG" when the error
// names no field.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(e.Line))
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a rules file, in line order. Load and
// Parse return it, never empty, as their error when the file is invalid; it
// prints one problem a line, like errors.Join, and errors.As finds each
// *Error through Unwrap.
type Errors []*Error

// Error returns every problem, one a line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns every problem, for errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// tabIndent returns the line, the error's or the next (the parser reports
// a tab that breaks the indentation on the line before it), whose
// indentation holds a tab, when msg is one of the errors yaml.v3 gives for
// one; otherwise 0. YAML allows tabs elsewhere (after a key's colon, inside
// flow lists), so only a failed parse is explained this way.
func tabIndent(data []byte, line int, msg string) int {
	switch msg {
	case "found character that cannot start any token", "found a tab character that violates indentation":
	default:
		return 0
	}
	lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	for n := max(line, 1); n <= line+1 && n <= len(lines); n++ {
		text := lines[n-1]
		indent := text[:len(text)-len(strings.TrimLeft(text, " \t"))]
		if strings.Contains(indent, "\t") {
			return n
		}
	}
	return 0
}

// sourceKindMissing is the error for a source without "kind:". A value
// spelled like an environment variable name by convention (upper-case
// words joined by '_', such as OPENAI_REAL) is probably one, and the error
// suggests env:NAME. Anything else is not quoted: it may be a credential
// pasted where its reference belongs (API keys are mostly lower or mixed
// case, and those that are upper case, such as AWS key ids, have no '_').
func sourceKindMissing(ref string) error {
	if envNameByConvention(ref) {
		return fmt.Errorf("want %s (did you mean env:%s?)", sourceSyntax, ref)
	}
	return errors.New("want " + sourceSyntax)
}

// envNameByConvention reports whether s is upper-case words of letters and
// digits joined by single '_', starting with a letter, at most 64 bytes.
func envNameByConvention(s string) bool {
	if len(s) > 64 || !strings.Contains(s, "_") {
		return false
	}
	for word := range strings.SplitSeq(s, "_") {
		if word == "" {
			return false
		}
		for _, c := range word {
			if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
				return false
			}
		}
	}
	return s[0] >= 'A' && s[0] <= 'Z'
}

// notURL reports a host pattern written as a URL ("https://api.openai.com")
// with the host to write instead.
func notURL(s string) error {
	scheme, _, ok := strings.Cut(s, "://")
	if !ok || scheme == "" || strings.ContainsAny(scheme, "/:[]") {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q: want a host, not a URL", s)
	}
	return fmt.Errorf("%q: a host, not a URL: %s", s, u.Host)
}

// sourceSyntax lists the forms of a source reference, for messages.
const sourceSyntax = "env:VAR, file:/path, exec:PROGRAM ARG..., vault:PATH#FIELD or store:NAME"

package pgfront

import "strings"

// Without temporary roles, read_only rests on the session default
// default_transaction_read_only=on, which keyhole sets in the upstream
// startup packet (so RESET and DISCARD ALL restore it), plus this check,
// which refuses, before they reach the server, the statements that could
// turn it off. The check is deliberately blunt: after dropping comments,
// white space, double quotes and case, a statement is refused when it
// holds any of these, wherever they stand, string literals included.
// Refusing a harmless statement that merely mentions one is the price of
// never parsing SQL.
var readOnlyBreakers = []string{
	"transaction_read_only", // SET [default_]transaction_read_only, SHOW is refused too
	"readwrite",             // BEGIN / START TRANSACTION / SET TRANSACTION / SET SESSION CHARACTERISTICS ... READ WRITE
	"set_config",            // set_config('transaction_read_only', ...)
	"characteristics",       // SET SESSION CHARACTERISTICS AS TRANSACTION ...
	"u&",                    // U&"..." identifiers can spell any of the above in escapes
}

// breaksReadOnly reports whether query holds a statement that could turn
// off read-only mode.
func breaksReadOnly(query string) bool {
	n := normalizeSQL(query)
	for _, b := range readOnlyBreakers {
		if strings.Contains(n, b) {
			return true
		}
	}
	return false
}

// normalizeSQL lower-cases s and drops comments (-- to the end of the
// line, and nested /* */), white space and double quotes.
func normalizeSQL(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	depth := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case depth > 0 && c == '*' && i+1 < len(s) && s[i+1] == '/':
			depth--
			i++
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			depth++
			i++
		case depth > 0:
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == ' ', c == '\t', c == '\n', c == '\r', c == '\f', c == '\v', c == '"':
		case 'A' <= c && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

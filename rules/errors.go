package rules

import (
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

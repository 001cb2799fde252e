package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
)

// The classes of a capture that failed, as the audit record's
// capture_error names them. None holds a byte of the response.
const (
	captureNotJSON   = "not_json"      // the body is not one JSON document
	captureNoField   = "missing_field" // the json path names nothing
	captureNotString = "not_string"    // the field is not a string (or is empty)
	captureAmbiguous = "ambiguous"     // the path names several different values
	captureTooLarge  = "too_large"     // the body is over maxCaptureBody
	captureDecode    = "decode_error"  // the body could not be read or decoded
	captureStore     = "store_error"   // the value could not be stored or put in force
	captureNoStore   = "no_store"      // keyhole runs without a store
)

// captureError is a failed capture: its class, for the audit record.
type captureError struct{ class string }

func (e *captureError) Error() string { return "capture failed: " + e.class }

// fieldSpan is where one string at the capture path is in a document: the
// bytes of the whole JSON string, quotes included.
type fieldSpan struct{ start, end int }

// findField finds every value at path in the JSON document doc. It returns
// the string the path names and where each occurrence is (an object may
// repeat a key, and a client would read the last: every one is replaced).
// Anything else fails closed: a document that is not JSON, a path that
// names nothing, a value that is not a non-empty string, or occurrences
// that differ.
func findField(doc []byte, path []string) (string, []fieldSpan, error) {
	if !json.Valid(doc) {
		return "", nil, &captureError{captureNotJSON}
	}
	type frame struct {
		array   bool
		index   int    // the element being read, in an array
		key     string // the member being read, in an object
		wantKey bool   // an object's next token is a key (or its end)
	}
	var stack []frame
	var value string
	var spans []fieldSpan
	// next moves the innermost container past the value just read.
	next := func() {
		if n := len(stack); n > 0 {
			if stack[n-1].array {
				stack[n-1].index++
			} else {
				stack[n-1].wantKey = true
			}
		}
	}
	atPath := func() bool {
		if len(stack) != len(path) {
			return false
		}
		for i, f := range stack {
			if f.array && strconv.Itoa(f.index) != path[i] || !f.array && f.key != path[i] {
				return false
			}
		}
		return true
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	for {
		off := dec.InputOffset()
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", nil, &captureError{captureNotJSON}
		}
		d, isDelim := tok.(json.Delim)
		if n := len(stack); n > 0 && stack[n-1].wantKey && !(isDelim && d == '}') {
			stack[n-1].key, stack[n-1].wantKey = tok.(string), false
			continue
		}
		if isDelim && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			next()
			continue
		}
		if atPath() {
			s, ok := tok.(string)
			if !ok || s == "" {
				return "", nil, &captureError{captureNotString}
			}
			if spans != nil && s != value {
				return "", nil, &captureError{captureAmbiguous}
			}
			end := int(dec.InputOffset())
			start := int(off) + bytes.IndexByte(doc[off:end], '"')
			value = s
			spans = append(spans, fieldSpan{start, end})
		}
		switch {
		case isDelim && d == '{':
			stack = append(stack, frame{wantKey: true})
		case isDelim && d == '[':
			stack = append(stack, frame{array: true})
		default:
			next()
		}
	}
	if spans == nil {
		return "", nil, &captureError{captureNoField}
	}
	return value, spans, nil
}

// replaceSpans returns doc with every span replaced by the JSON string
// repl (which needs no escaping).
func replaceSpans(doc []byte, spans []fieldSpan, repl string) []byte {
	out := make([]byte, 0, len(doc)+len(spans)*(len(repl)+2))
	last := 0
	for _, s := range spans {
		out = append(out, doc[last:s.start]...)
		out = append(out, '"')
		out = append(out, repl...)
		out = append(out, '"')
		last = s.end
	}
	return append(out, doc[last:]...)
}

var _ error = (*captureError)(nil)

// classOf returns the class of a capture error; anything else is a decode
// error (the body could not be read).
func classOf(err error) string {
	var ce *captureError
	if errors.As(err, &ce) {
		return ce.class
	}
	return captureDecode
}

package audit

// This file is the reading side of the log: parsing a line into an Entry,
// choosing entries with a Filter, and reading a whole log with Scan. The
// readers are written for a log that a proxy may be appending to right now
// and that a person or a crash may have damaged: a line that does not parse
// is skipped and counted, never fatal, and no line is buffered beyond
// MaxLine.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// MaxLine is the longest audit line the readers accept, in bytes, not
// counting its newline. A longer line is skipped and counted as malformed;
// its bytes are dropped as they are read, never held whole.
const MaxLine = 1 << 20

// Entry is one parsed audit line: a request record, or an event such as a
// rules reload when Event is set. Fields a line lacks are zero. Keys that
// Entry does not know are ignored, so that a reader keeps working when the
// writer gains fields.
type Entry struct {
	Time      time.Time
	RequestID string
	Agent     string
	TokenID   string
	TokenIDs  []string // the id chain of an attenuated token, root first; nil otherwise
	// TokenVerified is false when the credentials did not verify, and the
	// agent and token ids are only what they claimed; nil when the line
	// does not say (the credentials verified, or there were none).
	TokenVerified *bool
	Method        string
	Scheme        string
	Host          string
	Port          int
	Path          string
	Status        int
	Decision      string // Allow or Deny; "" for an event
	Reason        string // refusal reason; "" when allowed
	Secrets       []string
	Scrubbed      int
	Duration      time.Duration // from duration_ms, to the microsecond
	BytesOut      int64
	Error         string

	Event  string   // the event's name, such as "reload"; "" for a request record
	OK     *bool    // the event's "ok"; nil when the line has none
	Errors []string // the event's "errors"

	// Raw is the line exactly as read, without its line ending.
	Raw []byte
}

// wireEntry is an Entry as JSON spells it.
type wireEntry struct {
	Time       time.Time `json:"time"`
	RequestID  string    `json:"request_id"`
	Agent      string    `json:"agent"`
	TokenID    string    `json:"token_id"`
	TokenIDs   []string  `json:"token_ids"`
	Verified   *bool     `json:"token_verified"`
	Method     string    `json:"method"`
	Scheme     string    `json:"scheme"`
	Host       string    `json:"host"`
	Port       int       `json:"port"`
	Path       string    `json:"path"`
	Status     int       `json:"status"`
	Decision   string    `json:"decision"`
	Reason     string    `json:"reason"`
	Secrets    []string  `json:"secrets"`
	Scrubbed   int       `json:"scrubbed"`
	DurationMS float64   `json:"duration_ms"`
	BytesOut   int64     `json:"bytes_out"`
	Error      string    `json:"error"`
	Event      string    `json:"event"`
	OK         *bool     `json:"ok"`
	Errors     []string  `json:"errors"`
}

// maxDurationMS is the longest duration_ms a time.Duration can hold.
const maxDurationMS = float64(math.MaxInt64 / int64(time.Millisecond))

// ParseEntry parses one audit line (without its newline). The line must be
// a JSON object with a "time"; a known key with a value of the wrong type
// is an error. The error never quotes the line, which may hold anything.
func ParseEntry(line []byte) (Entry, error) {
	var w wireEntry
	if err := json.Unmarshal(line, &w); err != nil {
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		switch {
		case errors.As(err, &typeErr) && typeErr.Field != "":
			return Entry{}, fmt.Errorf("audit: parse entry: %s: want %s, not %s", typeErr.Field, typeErr.Type, typeErr.Value)
		case errors.As(err, &typeErr):
			return Entry{}, fmt.Errorf("audit: parse entry: want a JSON object, not %s", typeErr.Value)
		case errors.As(err, &syntaxErr):
			return Entry{}, fmt.Errorf("audit: parse entry: invalid JSON at byte %d", syntaxErr.Offset)
		}
		return Entry{}, errors.New("audit: parse entry: invalid JSON")
	}
	if w.Time.IsZero() {
		return Entry{}, errors.New("audit: parse entry: time: missing")
	}
	if w.DurationMS < 0 || w.DurationMS > maxDurationMS {
		return Entry{}, errors.New("audit: parse entry: duration_ms: out of range")
	}
	return Entry{
		Time:          w.Time,
		RequestID:     w.RequestID,
		Agent:         w.Agent,
		TokenID:       w.TokenID,
		TokenIDs:      w.TokenIDs,
		TokenVerified: w.Verified,
		Method:        w.Method,
		Scheme:        w.Scheme,
		Host:          w.Host,
		Port:          w.Port,
		Path:          w.Path,
		Status:        w.Status,
		Decision:      w.Decision,
		Reason:        w.Reason,
		Secrets:       w.Secrets,
		Scrubbed:      w.Scrubbed,
		Duration:      time.Duration(math.Round(w.DurationMS*1000)) * time.Microsecond,
		BytesOut:      w.BytesOut,
		Error:         w.Error,
		Event:         w.Event,
		OK:            w.OK,
		Errors:        w.Errors,
		Raw:           bytes.Clone(line),
	}, nil
}

// Filter chooses entries. Each field that is set must match; the zero
// Filter matches every entry. An event (a reload) has no agent, host,
// secret or decision, so it matches only a Filter that sets none of those.
type Filter struct {
	Agent      string    // the agent, exactly; "" for any
	Host       string    // the host, exactly (any case), or "*.example.com" for any subdomain; "" for any
	Secret     string    // a secret the request used, or named if it was refused; "" for any
	Token      string    // a token id: the token's own or any in its chain; "" for any
	DeniedOnly bool      // only refused requests
	Since      time.Time // only entries at or after this time; zero for any
}

// Match reports whether e passes f.
func (f Filter) Match(e *Entry) bool {
	if !f.Since.IsZero() && e.Time.Before(f.Since) {
		return false
	}
	if e.Event != "" {
		return f.Agent == "" && f.Host == "" && f.Secret == "" && f.Token == "" && !f.DeniedOnly
	}
	switch {
	case f.Agent != "" && e.Agent != f.Agent:
		return false
	case f.Host != "" && !matchHost(f.Host, e.Host):
		return false
	case f.Secret != "" && !slices.Contains(e.Secrets, f.Secret):
		return false
	case f.Token != "" && e.TokenID != f.Token && !slices.Contains(e.TokenIDs, f.Token):
		return false
	case f.DeniedOnly && e.Decision != Deny:
		return false
	}
	return true
}

// matchHost matches host against an exact name or "*.suffix", which
// matches any name below suffix but not suffix itself, as in the rules.
func matchHost(pattern, host string) bool {
	suffix, ok := strings.CutPrefix(pattern, "*.")
	if !ok {
		return strings.EqualFold(pattern, host)
	}
	n := len(host) - len(suffix)
	return n > 1 && host[n-1] == '.' && strings.EqualFold(host[n:], suffix)
}

// Scan reads an audit log from r and calls fn with each entry, in order,
// until the end of r. A line that does not parse or is longer than
// MaxLine is skipped and counted in skipped. A last line without a newline
// is parsed too (a log being written may end with part of a line; it is
// then skipped). Scan returns fn's first error, unwrapped, or r's.
func Scan(r io.Reader, fn func(Entry) error) (skipped int, err error) {
	lr := newLineReader(r)
	for done := false; !done; {
		line, err := lr.next()
		if err == io.EOF {
			line, err = lr.last()
			done = true
		}
		switch {
		case err == io.EOF:
		case errors.Is(err, errLongLine):
			skipped++
		case err != nil:
			return skipped, fmt.Errorf("audit: scan: %w", err)
		default:
			e, err := ParseEntry(line)
			if err != nil {
				skipped++
				continue
			}
			if err := fn(e); err != nil {
				return skipped, err
			}
		}
	}
	return skipped, nil
}

// errLongLine is a line longer than MaxLine.
var errLongLine = errors.New("line longer than MaxLine")

// lineReader splits a reader that may still be growing into lines. At the
// end of the input it keeps the part of a line read so far, so the next
// call, after the file has grown, finishes that line.
type lineReader struct {
	br   *bufio.Reader
	line []byte // the current line so far, with its newline once whole
	long bool   // the current line is longer than MaxLine: its bytes are dropped
	n    int64  // bytes consumed from the input
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the next whole line without its line ending; the slice is
// valid until the next call. It returns errLongLine for a line longer
// than MaxLine, and io.EOF when no whole line is left.
func (lr *lineReader) next() ([]byte, error) {
	for {
		chunk, err := lr.br.ReadSlice('\n')
		lr.n += int64(len(chunk))
		if !lr.long {
			if len(lr.line)+len(chunk) > MaxLine+1 {
				lr.line, lr.long = lr.line[:0], true
			} else {
				lr.line = append(lr.line, chunk...)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return nil, err
		}
		line, long := lr.line, lr.long
		lr.line, lr.long = lr.line[:0], false
		if long {
			return nil, errLongLine
		}
		line = line[:len(line)-1]
		return bytes.TrimSuffix(line, []byte("\r")), nil
	}
}

// last returns the part of a line read so far as the last line, at the
// end of a file that will not grow, and forgets it. It returns io.EOF when
// there is none and errLongLine when it was longer than MaxLine.
func (lr *lineReader) last() ([]byte, error) {
	line, long := lr.line, lr.long
	lr.line, lr.long = lr.line[:0], false
	switch {
	case long:
		return nil, errLongLine
	case len(line) == 0:
		return nil, io.EOF
	}
	return bytes.TrimSuffix(line, []byte("\r")), nil
}

// reset starts over on r, which is at offset n of its file, dropping any
// part of a line.
func (lr *lineReader) reset(r io.Reader, n int64) {
	lr.br.Reset(r)
	lr.line, lr.long, lr.n = lr.line[:0], false, n
}

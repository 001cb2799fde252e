package audit

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// lineHandler is the slog.Handler of the audit log: one JSON object a line,
// "time" first (UTC, milliseconds), then the record's attributes in order,
// with no level and no message. It encodes the few kinds audit records use
// (strings, numbers, booleans, string lists) directly into a pooled buffer,
// which is several times cheaper than slog's generic JSON handler; other
// values go through encoding/json. Groups are flattened into dotted keys.
type lineHandler struct {
	w      io.Writer
	chain  *chain      // seals and orders lines; nil: lines are not chained
	mu     *sync.Mutex // serializes writes to w when neither chain nor w does
	prefix []byte      // encoded attributes from WithAttrs, each followed by ','
	group  string      // key prefix from WithGroup
}

func newLineHandler(w io.Writer) *lineHandler {
	h := &lineHandler{w: w}
	if _, ok := w.(*File); !ok {
		// A File serializes its writes itself.
		h.mu = &sync.Mutex{}
	}
	return h
}

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func (h *lineHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *lineHandler) Handle(_ context.Context, r slog.Record) error {
	bp := linePool.Get().(*[]byte)
	b := h.begin((*bp)[:0], r.Time)
	r.Attrs(func(a slog.Attr) bool {
		if rec, ok := a.Value.Any().(*Record); ok && a.Key == "" && h.group == "" {
			b = appendRecord(append(b, ','), rec)
		} else {
			b = h.appendAttr(append(b, ','), a)
		}
		return true
	})
	return h.end(bp, b)
}

// record writes rec at t as Handle writes a slog record holding rec
// alone, byte for byte, without making the slog record.
func (h *lineHandler) record(t time.Time, rec *Record) error {
	bp := linePool.Get().(*[]byte)
	b := h.begin((*bp)[:0], t)
	if h.group == "" {
		b = appendRecord(append(b, ','), rec)
	} else {
		b = h.appendAttr(append(b, ','), slog.Any("", rec))
	}
	return h.end(bp, b)
}

// begin appends the start of a line at t: the time and the attributes
// from WithAttrs.
func (h *lineHandler) begin(b []byte, t time.Time) []byte {
	b = append(b, `{"time":"`...)
	b = appendTime(b, t)
	b = append(b, '"')
	if len(h.prefix) > 0 {
		b = append(append(b, ','), h.prefix[:len(h.prefix)-1]...)
	}
	return b
}

// end closes the line b, in the pooled buffer bp, and writes it.
func (h *lineHandler) end(bp *[]byte, b []byte) error {
	if h.chain != nil {
		b, err := h.chain.write(h.w, b)
		*bp = b
		linePool.Put(bp)
		return err
	}
	b = append(b, "}\n"...)
	if h.mu != nil {
		h.mu.Lock()
		defer h.mu.Unlock()
	}
	_, err := h.w.Write(b)
	*bp = b
	linePool.Put(bp)
	return err
}

func (h *lineHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	h2 := *h
	h2.prefix = append([]byte(nil), h.prefix...)
	for _, a := range attrs {
		h2.prefix = append(h2.appendAttr(h2.prefix, a), ',')
	}
	return &h2
}

func (h *lineHandler) WithGroup(name string) slog.Handler {
	h2 := *h
	h2.group = h.group + name + "."
	return &h2
}

func (h *lineHandler) appendAttr(b []byte, a slog.Attr) []byte {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup && a.Key == "" {
		// An inline group, such as a Record resolved through LogValue.
		for i, ga := range v.Group() {
			if i > 0 {
				b = append(b, ',')
			}
			b = h.appendAttr(b, ga)
		}
		return b
	}
	b = appendJSONString(b, h.group+a.Key)
	b = append(b, ':')
	switch v.Kind() {
	case slog.KindString:
		return appendJSONString(b, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindFloat64:
		return strconv.AppendFloat(b, v.Float64(), 'f', -1, 64)
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		return strconv.AppendInt(b, int64(v.Duration()), 10)
	case slog.KindTime:
		return appendJSONString(b, v.Time().UTC().Format(time.RFC3339Nano))
	}
	if list, ok := v.Any().([]string); ok {
		return appendStrings(b, list)
	}
	js, err := json.Marshal(v.Any())
	if err != nil {
		return appendJSONString(b, "!ERROR:"+err.Error())
	}
	return append(b, js...)
}

// appendRecord encodes r's fields, in the order of Record.LogValue.
func appendRecord(b []byte, r *Record) []byte {
	b = appendJSONString(append(b, `"request_id":`...), r.RequestID)
	b = appendJSONString(append(b, `,"agent":`...), r.Agent)
	b = appendJSONString(append(b, `,"token_id":`...), r.TokenID)
	if len(r.TokenIDs) > 1 {
		b = appendStrings(append(b, `,"token_ids":`...), r.TokenIDs)
	}
	if r.TokenUnverified {
		b = append(b, `,"token_verified":false`...)
	}
	b = appendJSONString(append(b, `,"method":`...), r.Method)
	b = appendJSONString(append(b, `,"scheme":`...), r.Scheme)
	b = appendJSONString(append(b, `,"host":`...), r.Host)
	b = strconv.AppendInt(append(b, `,"port":`...), int64(r.Port), 10)
	b = appendJSONString(append(b, `,"path":`...), r.Path)
	b = strconv.AppendInt(append(b, `,"status":`...), int64(r.Status), 10)
	b = appendJSONString(append(b, `,"decision":`...), r.Decision)
	b = appendJSONString(append(b, `,"reason":`...), r.Reason)
	b = appendStrings(append(b, `,"secrets":`...), r.Secrets)
	b = strconv.AppendInt(append(b, `,"scrubbed":`...), int64(r.Scrubbed), 10)
	b = strconv.AppendFloat(append(b, `,"duration_ms":`...), r.durationMS(), 'f', -1, 64)
	b = strconv.AppendInt(append(b, `,"bytes_out":`...), r.BytesOut, 10)
	if r.Error != "" {
		b = appendJSONString(append(b, `,"error":`...), r.Error)
	}
	if r.Session != "" {
		b = appendJSONString(append(b, `,"session":`...), r.Session)
	}
	if r.Proto != "" {
		b = appendJSONString(append(b, `,"proto":`...), r.Proto)
	}
	if r.Budget != "" {
		b = appendJSONString(append(b, `,"budget":`...), r.Budget)
	}
	if len(r.Captured) > 0 {
		b = appendStrings(append(b, `,"captured":`...), r.Captured)
	}
	if r.CaptureError != "" {
		b = appendJSONString(append(b, `,"capture_error":`...), r.CaptureError)
	}
	return b
}

// appendStrings appends list as a JSON array of strings; [] when empty.
func appendStrings(b []byte, list []string) []byte {
	b = append(b, '[')
	for i, s := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// appendTime appends t in UTC as 2006-01-02T15:04:05.000Z, the layout of
// every audit line, without parsing a layout string each time. The text up
// to the seconds is that of the minute of the last line, most of the time.
func appendTime(b []byte, t time.Time) []byte {
	if sec := t.Unix(); sec >= 0 {
		m := lastMinute.Load()
		if m == nil || m.minute != sec/60 {
			m = newMinuteText(sec/60, t)
			lastMinute.Store(m)
		}
		if m.ok {
			b = append(b, m.text[:]...)
			b = appendDigits(b, int(sec%60), 2)
			b = appendDigits(append(b, '.'), t.Nanosecond()/1e6, 3)
			return append(b, 'Z')
		}
	}
	return appendTimeSlow(b, t)
}

// minuteText is the text of one minute, "2006-01-02T15:04:", as appendTime
// writes it; ok is false for a minute after the year 9999.
type minuteText struct {
	minute int64 // Unix seconds / 60
	text   [17]byte
	ok     bool
}

// lastMinute is the minute appendTime wrote last; never modified once
// stored.
var lastMinute atomic.Pointer[minuteText]

func newMinuteText(minute int64, t time.Time) *minuteText {
	m := &minuteText{minute: minute}
	if b := appendTimeSlow(nil, t); len(b) == len("2006-01-02T15:04:05.000Z") {
		m.ok = copy(m.text[:], b) == len(m.text)
	}
	return m
}

// appendTimeSlow is appendTime without the minute's text.
func appendTimeSlow(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	ms := t.Nanosecond() / 1e6
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	}
	b = appendDigits(b, year, 4)
	b = appendDigits(append(b, '-'), int(month), 2)
	b = appendDigits(append(b, '-'), day, 2)
	b = appendDigits(append(b, 'T'), hour, 2)
	b = appendDigits(append(b, ':'), minute, 2)
	b = appendDigits(append(b, ':'), sec, 2)
	b = appendDigits(append(b, '.'), ms, 3)
	return append(b, 'Z')
}

// appendDigits appends n, 0 ≤ n < 10^width, zero-padded to width digits.
func appendDigits(b []byte, n, width int) []byte {
	var d [4]byte
	for i := width - 1; i >= 0; i-- {
		d[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, d[:width]...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string, escaped as log/slog's JSON
// handler does: control characters, quotes and backslashes, and
// U+2028/U+2029; invalid UTF-8 becomes U+FFFD. The output is one line
// whatever s holds.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(append(b, s[start:i]...), `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(append(b, s[start:i]...), `\u202`...)
			b = append(b, hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(append(b, s[start:]...), '"')
}

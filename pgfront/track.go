package pgfront

import (
	"strconv"
	"strings"
	"sync"
	"time"
)

// The tracker pairs what the server answers with what the client asked, so
// that every statement gets one audit record with its text, its row count
// and its outcome. It follows the protocol's rules (PostgreSQL docs, "Message
// Flow"): the server answers messages in order; after an error in the
// extended protocol it discards messages up to the next Sync; a simple Query
// yields one completion per statement and ends with ReadyForQuery.

// step is a client message waiting for the server's answer.
type step uint8

const (
	stepQuery    step = iota // a simple Query: completions until ReadyForQuery
	stepFunction             // a FunctionCall
	stepParse
	stepBind
	stepDescribe
	stepClose
	stepExecute
	stepSync
)

type pending struct {
	step  step
	query string // bounded statement text (Query, Parse, Execute)
	start time.Time
}

// outcome is one finished statement.
type outcome struct {
	query  string
	rows   int64
	status string // "ok" or the SQLSTATE
	start  time.Time
	dur    time.Duration
}

// maxPending bounds the messages a client may have in flight: a client that
// pipelines more without reading the answers is closed.
const maxPending = 16384

type tracker struct {
	mu sync.Mutex
	q  []pending
}

// push records a message sent to the server; false means too many are in
// flight.
func (t *tracker) push(s step, query string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.q) >= maxPending {
		return false
	}
	t.q = append(t.q, pending{step: s, query: query, start: now})
	return true
}

// busy reports whether the server owes answers.
func (t *tracker) busy() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.q) > 0
}

func (t *tracker) pop() {
	t.q[0] = pending{}
	t.q = t.q[1:]
	if len(t.q) == 0 {
		t.q = t.q[:0:0] // let the backing array go
	}
}

// answered pops the head when it is s: ParseComplete answers Parse,
// BindComplete Bind, CloseComplete Close, RowDescription or NoData Describe.
func (t *tracker) answered(s step) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.q) > 0 && t.q[0].step == s {
		t.pop()
	}
}

// complete handles CommandComplete (tag), EmptyQueryResponse and
// PortalSuspended: the statement at the head finished.
func (t *tracker) complete(tag string, now time.Time) (outcome, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.q) == 0 {
		return outcome{}, false
	}
	h := &t.q[0]
	o := outcome{query: h.query, rows: tagRows(tag), status: "ok", start: h.start, dur: now.Sub(h.start)}
	switch h.step {
	case stepQuery, stepFunction:
		h.start = now // the next statement of a multi-statement Query
	case stepExecute:
		t.pop()
	default:
		return outcome{}, false
	}
	return o, true
}

// fail handles ErrorResponse with SQLSTATE code: the head failed, and in the
// extended protocol the server skips everything up to the next Sync.
func (t *tracker) fail(code string, now time.Time) (outcome, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.q) == 0 {
		return outcome{}, false // an error outside any request, such as a shutdown
	}
	h := t.q[0]
	o := outcome{query: h.query, status: code, start: h.start, dur: now.Sub(h.start)}
	switch h.step {
	case stepQuery, stepFunction:
		return o, true // ReadyForQuery ends it
	case stepSync:
		return o, true // a failed implicit COMMIT
	}
	for len(t.q) > 0 && t.q[0].step != stepSync {
		t.pop()
	}
	return o, true
}

// ready handles ReadyForQuery: it ends a Query, a FunctionCall or a Sync.
func (t *tracker) ready() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(t.q) > 0 {
		s := t.q[0].step
		t.pop()
		if s == stepQuery || s == stepFunction || s == stepSync {
			return
		}
	}
}

// tagRows returns the row count of a command tag: its last word when that
// is a number ("SELECT 5", "INSERT 0 3", "COPY 10"), else 0.
func tagRows(tag string) int64 {
	i := strings.LastIndexByte(tag, ' ')
	if i < 0 {
		return 0
	}
	n, err := strconv.ParseInt(tag[i+1:], 10, 64)
	if err != nil {
		return 0
	}
	return n
}

package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"keyhole/secret"
)

// The kinds of Break.
const (
	// BreakChanged: the line's hash does not match its content. It was
	// edited, written by someone without the key, or is not a line of a
	// chained log at all.
	BreakChanged = "changed"
	// BreakRemoved: one or more lines are missing just before this line.
	BreakRemoved = "removed"
	// BreakReordered: the line is not where it was written (moved or
	// copied): its prev is the hash of another line than the one before.
	BreakReordered = "reordered"
	// BreakRestarted: a new chain starts here: keyhole started without
	// knowing the hash of the last line it wrote (its state dir and its
	// log were both lost), so what came before cannot be shown whole.
	BreakRestarted = "restarted"
)

// Break is the first place where a chain is not whole: File:Line names the
// line that was changed or moved, or the line just after the ones that
// were removed.
type Break struct {
	File    string
	Line    int
	Kind    string // BreakChanged, BreakRemoved, BreakReordered or BreakRestarted
	Message string // what is wrong, as a sentence
}

// Error returns "FILE:LINE: message".
func (b *Break) Error() string { return fmt.Sprintf("%s:%d: %s", b.File, b.Line, b.Message) }

// Verified describes a chain that Verify found whole.
type Verified struct {
	Files int
	Lines int
	// First is the prev of the first line: "" when the files start the
	// chain, else the hash of a line in an earlier file, not given.
	First string
	// Last is the hash of the last line. Removing lines at the end of the
	// last file leaves a whole, shorter chain: that shows only once a
	// later line (keyhole's next one) or file is verified with it, or
	// against a Last kept from an earlier run.
	Last string
}

// Verify checks that files, given in the order they were written (oldest
// first, so audit.log.2 audit.log.1 audit.log), hold one whole chain under
// key: every line's hash matches its content, and every line's prev is the
// hash of the line before it, across files. It returns a *Break for the
// first line where that fails, and other errors when a file cannot be
// read.
func Verify(key secret.Value, files []string) (Verified, error) {
	v := verifier{mac: hmac.New(sha256.New, []byte(key.Reveal())), files: files}
	var res Verified
	havePrev := false
	var prev []byte
	for _, name := range files {
		res.Files++
		err := eachLine(name, func(n int, line []byte, whole bool) error {
			res.Lines++
			h, p, brk := v.check(name, n, line, whole)
			if brk != nil {
				return brk
			}
			switch {
			case !havePrev:
				res.First, havePrev = string(p), true
			case !bytes.Equal(p, prev):
				return v.classify(name, n, p, prev)
			}
			prev = append(prev[:0], h...)
			return nil
		})
		if err != nil {
			return res, err
		}
	}
	res.Last = string(prev)
	return res, nil
}

type verifier struct {
	mac   hash.Hash
	files []string
	body  []byte
	sum   []byte
}

// check verifies one line's hash and returns its hash and prev.
func (v *verifier) check(name string, n int, line []byte, whole bool) (h, prev []byte, brk *Break) {
	changed := func(msg string) *Break {
		return &Break{File: name, Line: n, Kind: BreakChanged, Message: msg}
	}
	switch {
	case !whole:
		// keyhole writes whole lines only.
		return nil, nil, changed("the last line has no newline: the file was cut, or is being written")
	case line == nil:
		return nil, nil, changed("the line is longer than 1 MiB: not an audit line")
	}
	h = hashOf(line)
	if h == nil {
		return nil, nil, changed(`the line has no "hash": it was edited, or is not a line of a chained audit log`)
	}
	v.body = append(append(v.body[:0], line[:len(line)-hashSuffixLen]...), '}')
	v.mac.Reset()
	v.mac.Write(v.body)
	v.sum = hex.AppendEncode(v.sum[:0], v.mac.Sum(nil))
	if !hmac.Equal(v.sum, h) {
		return nil, nil, changed("the line was changed: its hash does not match its content (or it was sealed with another key)")
	}
	body := v.body[:len(v.body)-2] // without `"}`
	i := bytes.LastIndex(body, []byte(prevKey))
	if i < 0 {
		return nil, nil, changed(`the line has no "prev"`)
	}
	prev = body[i+len(prevKey):]
	if len(prev) != 0 && (len(prev) != hashHex || !isHex(prev)) {
		return nil, nil, changed(`the line's "prev" is not a hash`)
	}
	return h, prev, nil
}

// classify explains why the line at name:n, whose prev is p, does not
// follow the line before it, whose hash is want.
func (v *verifier) classify(name string, n int, p, want []byte) error {
	brk := &Break{File: name, Line: n}
	if len(p) == 0 {
		brk.Kind = BreakRestarted
		brk.Message = "a new chain starts here: keyhole started without the hash of the line before it, so the lines before cannot be shown whole"
		return brk
	}
	where, err := v.find(p)
	if err != nil {
		return err
	}
	if where == "" {
		brk.Kind = BreakRemoved
		brk.Message = "one or more lines are missing just before this line"
		if n == 1 {
			brk.Message += ", at the end of the previous file or the start of this one (or the files are not in the order they were written)"
		}
		return brk
	}
	brk.Kind = BreakReordered
	brk.Message = "this line is out of order: it was written right after " + where
	return brk
}

// find returns "FILE:LINE" of the line whose hash is h, or "".
func (v *verifier) find(h []byte) (string, error) {
	for _, name := range v.files {
		var where string
		err := eachLine(name, func(n int, line []byte, _ bool) error {
			if line != nil && bytes.Equal(hashOf(line), h) {
				where = fmt.Sprintf("%s:%d", name, n)
				return errFound
			}
			return nil
		})
		if err != nil && !errors.Is(err, errFound) {
			return "", err
		}
		if where != "" {
			return where, nil
		}
	}
	return "", nil
}

var errFound = errors.New("found")

// eachLine calls fn with each line of the file at name, numbered from 1,
// without its line ending: nil for a line longer than MaxLine, and whole
// false for a last line without a newline. It returns fn's first error.
func eachLine(name string, fn func(n int, line []byte, whole bool) error) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("audit: verify: %w", err)
	}
	defer f.Close()
	lr := newLineReader(f)
	for n := 1; ; n++ {
		line, err := lr.next()
		whole := true
		if err == io.EOF {
			if line, err = lr.last(); err == io.EOF {
				return nil
			}
			whole = false
		}
		switch {
		case errors.Is(err, errLongLine):
			line = nil
		case err != nil:
			return fmt.Errorf("audit: verify: %s: %w", name, err)
		}
		if err := fn(n, line, whole); err != nil {
			return err
		}
		if !whole {
			return nil
		}
	}
}

package audit

// This file is the writing side of the tamper-evident chain. Every line
// ends with two members, "prev" and "hash":
//
//	{"time":"...", ... ,"prev":"<hex of the previous line's hash>","hash":"<hex>"}
//
// hash is HMAC-SHA256, under the key in the state dir's KeyFile, of the
// line exactly as written, without its newline and without its last
// member ,"hash":"..." — that is, of the bytes that end with
// "prev":"...", followed by the closing brace. prev is "" on the first
// line of a chain. Because prev is inside what is hashed, each line vouches
// for the one before it: a line cannot be changed, removed, inserted or
// moved without the key, and Verify names the first place where that
// happened.

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"keyhole/secret"
)

// KeyFile is the name of the chain's HMAC key in the state directory:
// 32 random bytes in base64, mode 0600, created on first start.
const KeyFile = "audit-key"

// ChainFile is the name of the file in the state directory that keeps the
// hash of the last line written, so that the chain continues across
// restarts and rotations: 64 hex digits and a newline, rewritten after
// every batch of lines reaches the log.
const ChainFile = "audit-chain"

const (
	keySize = 32
	hashHex = 2 * sha256.Size // hex digits of a hash
)

// The members that end a chained line.
const (
	prevKey = `,"prev":"`
	hashKey = `,"hash":"`
)

// hashSuffixLen is the length of `,"hash":"<hex>"}`.
const hashSuffixLen = len(hashKey) + hashHex + 2

// LoadOrCreateKey returns the chain's key from KeyFile in stateDir,
// creating stateDir (0700) and the key (0600) on first use.
func LoadOrCreateKey(stateDir string) (secret.Value, error) {
	k, err := secret.LoadOrCreateKeyFile(filepath.Join(stateDir, KeyFile), keySize)
	if err != nil {
		return secret.Value{}, fmt.Errorf("audit: chain key: %w", err)
	}
	return k, nil
}

// LoadKey returns the chain's key from KeyFile in stateDir. A missing key
// is an error that matches fs.ErrNotExist.
func LoadKey(stateDir string) (secret.Value, error) {
	k, err := secret.LoadKeyFile(filepath.Join(stateDir, KeyFile), keySize)
	if err != nil {
		return secret.Value{}, fmt.Errorf("audit: chain key: %w", err)
	}
	return k, nil
}

// chain seals lines in the order they are written. Sealing and writing
// happen under mu, so that the order of the chain is the order of the log.
type chain struct {
	mu   sync.Mutex
	mac  hash.Hash // HMAC-SHA256 under the key, reset for each line
	prev []byte    // hex hash of the last line written; empty at the start
	sum  []byte
}

func newChain(key secret.Value, prev string) *chain {
	return &chain{
		mac:  hmac.New(sha256.New, []byte(key.Reveal())),
		prev: append(make([]byte, 0, hashHex), prev...),
		sum:  make([]byte, 0, sha256.Size),
	}
}

// write seals b, one line's JSON without its closing brace, and writes it
// to w. The chain moves on only when the write succeeds, so that the next
// line never vouches for a line that is not in the log. It returns the
// sealed line, which reuses b's array.
func (c *chain) write(w io.Writer, b []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b = append(append(b, prevKey...), c.prev...)
	b = append(b, '"', '}')
	c.mac.Reset()
	c.mac.Write(b)
	c.sum = c.mac.Sum(c.sum[:0])
	b = append(b[:len(b)-1], hashKey...)
	start := len(b)
	b = hex.AppendEncode(b, c.sum)
	b = append(b, '"', '}', '\n')
	if _, err := w.Write(b); err != nil {
		return b, err
	}
	c.prev = append(c.prev[:0], b[start:start+hashHex]...)
	return b, nil
}

// hashOf returns the hash that line (without its newline) ends with, or
// nil when it does not end as a chained line does.
func hashOf(line []byte) []byte {
	if len(line) < hashSuffixLen || line[len(line)-1] != '}' || line[len(line)-2] != '"' {
		return nil
	}
	h := line[len(line)-2-hashHex : len(line)-2]
	if !bytes.Equal(line[len(line)-hashSuffixLen:len(line)-2-hashHex], []byte(hashKey)) || !isHex(h) {
		return nil
	}
	return h
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// lastLineHash returns the hash of the last line of data, or nil when that
// line has none.
func lastLineHash(data []byte) []byte {
	data = bytes.TrimSuffix(data, []byte("\n"))
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[i+1:]
	}
	return hashOf(bytes.TrimSuffix(data, []byte("\r")))
}

// tailSize is how much of the end of an existing log is read at start to
// find where the chain stands: more than one batch of lines.
const tailSize = 1 << 20

// chainStart works out the prev of the first line keyhole writes: the
// hash saved in ChainFile (the last line keyhole wrote), unless the log at
// path is ahead of it (keyhole stopped after a batch reached the log and
// before it was saved), in which case it is the log's last hash. Without a
// saved hash it is the log's last hash; without either, "" (a new chain).
// So a log that was rotated away or cut while keyhole was stopped does not
// restart the chain: the next line's prev names the last line written,
// and Verify shows what is missing.
func chainStart(stateFile, path string) (string, error) {
	saved, err := os.ReadFile(stateFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		saved = nil
	case err != nil:
		return "", fmt.Errorf("audit: read %s: %w", stateFile, err)
	default:
		saved = bytes.TrimSpace(saved)
		if len(saved) != hashHex || !isHex(saved) {
			return "", fmt.Errorf("audit: %s does not hold a hash; remove it to start a new chain", stateFile)
		}
	}
	tail, err := readTail(path)
	if err != nil {
		return "", err
	}
	last := lastLineHash(tail)
	switch {
	case saved == nil:
		return string(last), nil
	case last != nil && bytes.Contains(tail, append([]byte(hashKey), saved...)):
		return string(last), nil
	}
	return string(saved), nil
}

// readTail returns the last tailSize bytes of the file at path; nothing
// when path is "" (stdout) or the file does not exist.
func readTail(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: open log: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("audit: open log: %w", err)
	}
	off := max(fi.Size()-tailSize, 0)
	data := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(data, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("audit: read log: %w", err)
	}
	return data, nil
}

// chainSaver keeps ChainFile up to date with the last line of each batch
// that reached the log.
type chainSaver struct {
	f   *os.File
	buf [hashHex + 1]byte
}

func openChainSaver(path string) (*chainSaver, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	return &chainSaver{f: f}, nil
}

// saved records the hash of the last line of batch. One write of a fixed
// length at offset 0: the file never holds a mix of two hashes longer than
// the write takes.
func (s *chainSaver) saved(batch []byte) error {
	h := lastLineHash(batch)
	if h == nil {
		return nil
	}
	copy(s.buf[:], h)
	s.buf[hashHex] = '\n'
	if _, err := s.f.WriteAt(s.buf[:], 0); err != nil {
		return fmt.Errorf("audit: save the chain's last hash: %w", err)
	}
	return nil
}

func (s *chainSaver) close() error { return s.f.Close() }

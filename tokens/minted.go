package tokens

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// MintedFile is the name of the list of minted token ids in the state
// directory: append-only, mode 0600, one line a token, "ID AGENT EXPIRES
// CHAIN" (EXPIRES in RFC 3339, CHAIN the ids from the root to ID joined by
// ">"). It holds ids and agent names only, never a token, so that "keyhole
// token revoke" can refuse an id that keyhole never minted (a typo would
// otherwise leave the real token valid) and say what it revoked.
const MintedFile = "minted"

// maxMintedLine bounds a line of the minted list that is read: a line
// longer than this is not one keyhole wrote, and is skipped.
const maxMintedLine = 4 << 10

// Minted is one token id in the minted list.
type Minted struct {
	ID      string
	Agent   string
	Expires time.Time
	IDs     []string // the root id first, ending with ID
}

// RecordMinted appends the id, agent, expiry and id chain of token to the
// minted list in stateDir, creating stateDir (0700) and the list (0600)
// when missing. The token is read without the key; nothing of it but those
// fields is written.
func RecordMinted(stateDir, token string) error {
	info, err := Inspect(token)
	if err != nil {
		return fmt.Errorf("record minted token: %w", err)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("record minted token %s: %w", info.ID, err)
	}
	f, err := os.OpenFile(filepath.Join(stateDir, MintedFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("record minted token %s: %w", info.ID, err)
	}
	// One short write to an O_APPEND file: lines of concurrent minters do
	// not interleave.
	line := fmt.Sprintf("%s %s %s %s\n", info.ID, info.Agent, info.Expires.UTC().Format(time.RFC3339), strings.Join(info.IDs, ">"))
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return fmt.Errorf("record minted token %s: %w", info.ID, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("record minted token %s: %w", info.ID, err)
	}
	return nil
}

// LookupMinted returns the minted list's last entry for id in stateDir (a
// later mint may reuse an id), and false when the list (or the state dir)
// does not hold it. Lines that are not the list's own (malformed, too
// long) are skipped.
func LookupMinted(stateDir, id string) (Minted, bool, error) {
	f, err := os.Open(filepath.Join(stateDir, MintedFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Minted{}, false, nil
	}
	if err != nil {
		return Minted{}, false, fmt.Errorf("read minted tokens: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, maxMintedLine)
	var found Minted
	var ok bool
	for long := false; ; {
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			long = true // skip to the end of this line
			continue
		case err != nil && !errors.Is(err, io.EOF):
			return Minted{}, false, fmt.Errorf("read minted tokens: %w", err)
		}
		if !long && len(line) > 0 && line[len(line)-1] == '\n' {
			// The last line of an id wins: a later mint reused it.
			if m, parsed := parseMinted(string(line)); parsed && m.ID == id {
				found, ok = m, true
			}
		}
		long = false
		if err != nil {
			break // io.EOF; an unterminated last line is being written
		}
	}
	return found, ok, nil
}

// parseMinted parses one line of the minted list.
func parseMinted(line string) (Minted, bool) {
	fields := strings.Fields(line)
	if len(fields) != 4 {
		return Minted{}, false
	}
	exp, err := time.Parse(time.RFC3339, fields[2])
	if err != nil {
		return Minted{}, false
	}
	return Minted{ID: fields[0], Agent: fields[1], Expires: exp, IDs: strings.Split(fields[3], ">")}, true
}

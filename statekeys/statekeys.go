// Package statekeys shares one set of keys between keyhole replicas.
//
// Replicas act as one only when they hold the same keys: the CA (so agents
// trust every replica), the token key (a token minted by one verifies on
// all), the store keys (a value sealed by one opens on all; equal values show
// equal fingerprints) and the audit key (one key verifies every replica's
// hash chain). Everything else a keyhole writes into its state dir — the
// audit chain's last hash, the minted-token list, the revocation list, the
// store file — is its own and changes while it runs.
//
// On Kubernetes the keys come from a Secret mounted read-only and the state
// dir is a writable emptyDir. Install copies the keys from the mount into the
// state dir before anything opens them, so the code that reads keys stays
// the one that reads them from a state dir, and nothing is ever written into
// the mount. Because every key must be present, a replica never makes a key
// of its own (which would silently split it from the others: its tokens
// would not verify elsewhere).
package statekeys

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"keyhole/audit"
	"keyhole/certs"
	"keyhole/store"
	"keyhole/tokens"
)

// maxKeyFile bounds what is read of one key file: the largest, ca-key.pem,
// is under 1 KiB.
const maxKeyFile = 64 << 10

// Names are the files a keys dir holds, as the state dir names them. The
// store key is left out when KEYHOLE_STORE_KEY gives it (storeKeyFromEnv).
func Names(storeKeyFromEnv bool) []string {
	names := []string{certs.CertFile, certs.KeyFile, tokens.KeyFile, audit.KeyFile, store.FingerprintKeyFile}
	if !storeKeyFromEnv {
		names = append(names, store.KeyFile)
	}
	slices.Sort(names)
	return names
}

// Install copies every key of Names from keysDir into stateDir (created 0700
// if missing), replacing what stateDir held under those names: keysDir is the
// truth. Each copy (mode 0600, the certificate too) is written to a
// temporary file and renamed into place, so a reader never sees half a key.
// keysDir is only read.
//
// It fails, naming every problem, when a key is missing from keysDir, when
// keysDir holds a file that is not a key (a misspelt name in the Secret), or
// when a key file is not a regular file, is larger than a key, or can be
// read by others or written by anyone but its owner. A key may be readable
// by its group: the kubelet makes a Secret's files group-readable for the
// pod's fsGroup.
func Install(keysDir, stateDir string, storeKeyFromEnv bool) error {
	names := Names(storeKeyFromEnv)
	entries, err := os.ReadDir(keysDir)
	if err != nil {
		return fmt.Errorf("keys dir: %w", err)
	}
	var errs []error
	present := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, ".."): // the kubelet's ..data and timestamped dirs
		case slices.Contains(names, name):
			present[name] = true
		case name == store.KeyFile:
			errs = append(errs, fmt.Errorf("keys dir %s: %s is there but KEYHOLE_STORE_KEY is set too; keep one", keysDir, name))
		default:
			errs = append(errs, fmt.Errorf("keys dir %s: %s is not a key keyhole reads (want %s)", keysDir, name, strings.Join(names, ", ")))
		}
	}
	for _, name := range names {
		if !present[name] {
			errs = append(errs, fmt.Errorf("keys dir %s: %s is missing; create the keys with \"keyhole keys init\"", keysDir, name))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	for _, name := range names {
		data, err := readKey(filepath.Join(keysDir, name))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := store.WriteAtomic(filepath.Join(stateDir, name), data); err != nil {
			errs = append(errs, fmt.Errorf("state dir: install %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// readKey reads the key file at path, following symlinks (a mounted
// Secret's files are symlinks into its ..data directory).
func readKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrPermission) {
		return nil, fmt.Errorf("keys dir: %w; keyhole runs as uid %d: give the pod an fsGroup of keyhole's gid (%d), so that the kubelet makes the Secret's files readable by that group", err, os.Getuid(), os.Getgid())
	}
	if err != nil {
		return nil, fmt.Errorf("keys dir: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keys dir: %w", err)
	}
	switch perm := fi.Mode().Perm(); {
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("keys dir: %s is not a regular file", path)
	case perm&0o027 != 0:
		return nil, fmt.Errorf("keys dir: %s has mode %04o; a key may be read by its owner and group only and written by its owner only (a Secret's defaultMode 0400)", path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("keys dir: read %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("keys dir: %s is larger than %d bytes; it is not a key", path, maxKeyFile)
	}
	return data, nil
}

// Create makes every key of Names(false) in dir that is missing there (dir
// is created 0700), and returns the paths of all of them: the files a keys
// dir (a Kubernetes Secret) is made of. Existing keys are kept.
func Create(dir string) ([]string, error) {
	if _, err := certs.Init(dir); err != nil {
		return nil, err
	}
	if _, err := tokens.LoadOrCreateKey(dir); err != nil {
		return nil, err
	}
	if _, err := audit.LoadOrCreateKey(dir); err != nil {
		return nil, err
	}
	if _, err := store.Open(dir, ""); err != nil { // the store key and the fingerprint key
		return nil, err
	}
	var paths []string
	for _, name := range Names(false) {
		paths = append(paths, filepath.Join(dir, name))
	}
	return paths, nil
}

package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"keyhole/statekeys"
	"keyhole/store"
)

// keysCommand runs "keyhole keys init": it makes, in the state dir, every
// key replicas share (those that are missing) and prints their paths, one a
// line, the files of the Secret a keys dir is mounted from.
func keysCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "init" {
		return errors.New("keys: want \"keys init\"")
	}
	s, rest, err := parseSettings("keys init", args[1:], stderr)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("keys init: unexpected argument %q", rest[0])
	}
	if os.Getenv(store.KeyEnv) != "" {
		return fmt.Errorf("keys init: %s is set; unset it, so that the store key is made as a file", store.KeyEnv)
	}
	paths, err := statekeys.Create(s.StateDir)
	if err != nil {
		return fmt.Errorf("keys init: %w", err)
	}
	for _, p := range paths {
		fmt.Fprintln(stdout, p)
	}
	return nil
}

// installKeys copies the shared keys from KEYHOLE_KEYS_DIR, when it is set,
// into the state dir, before anything reads or makes a key there.
func installKeys(s settings) error {
	if s.KeysDir == "" {
		return nil
	}
	if err := statekeys.Install(s.KeysDir, s.StateDir, os.Getenv(store.KeyEnv) != ""); err != nil {
		return fmt.Errorf("serve: KEYHOLE_KEYS_DIR: %w", err)
	}
	return nil
}

package main

import (
	"errors"
	"fmt"
	"io"

	"keyhole/certs"
)

// caCommand runs "keyhole ca init" and "keyhole ca cert".
func caCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("ca: want \"ca init\" or \"ca cert\"")
	}
	sub := args[0]
	s, _, err := parseSettings("ca "+sub, args[1:], stderr)
	if err != nil {
		return err
	}
	switch sub {
	case "init":
		created, err := certs.Init(s.StateDir)
		if err != nil {
			return err
		}
		if created {
			fmt.Fprintf(stderr, "keyhole: created a CA in %s\n", s.StateDir)
		} else {
			fmt.Fprintf(stderr, "keyhole: the CA in %s already exists\n", s.StateDir)
		}
		return nil
	case "cert":
		a, err := certs.Load(s.StateDir, certs.Options{})
		if err != nil {
			return err
		}
		_, err = stdout.Write(a.CertPEM())
		return err
	}
	return fmt.Errorf("ca: unknown command %q; want init or cert", sub)
}

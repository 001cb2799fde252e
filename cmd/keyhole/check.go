package main

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// check validates a rules file: one summary line on stdout, or every error
// as FILE:LINE: message on stderr and exit status 1. Problems that do not
// stop the rules from loading (a source that cannot be read here) are
// warnings on stderr.
func check(args []string, stdout, stderr io.Writer) error {
	s, rest, err := parseSettings("check", args, stderr)
	if err != nil {
		return err
	}
	path := s.Rules
	switch len(rest) {
	case 0:
	case 1:
		path = rest[0]
	default:
		return errors.New("check: want at most one rules file")
	}
	loader, file := sourceLoader(s, false, nil)
	_, done, err := commandLoaderStore(context.Background(), s, loader, file)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	defer done()
	set, err := loader.Load(context.Background(), path, nil)
	if err != nil {
		printErrors(stderr, err)
		return exitError{}
	}
	for _, w := range set.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	fmt.Fprintln(stdout, set.Summary())
	return nil
}

// printErrors writes each error joined in err on its own line.
func printErrors(w io.Writer, err error) {
	for _, line := range errorLines(err) {
		fmt.Fprintln(w, line)
	}
}

// errorLines returns the message of each error joined in err (rules
// errors are one per problem, FILE:LINE: message).
func errorLines(err error) []string {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var lines []string
		for _, e := range joined.Unwrap() {
			lines = append(lines, errorLines(e)...)
		}
		return lines
	}
	return []string{err.Error()}
}

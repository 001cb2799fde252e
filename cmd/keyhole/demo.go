package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"keyhole/demo"
)

// demoCommand runs the offline quick start (package demo) with this very
// binary as the proxy.
func demoCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var opts demo.Options
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&opts.Dir, "dir", "", "keep the demo's rules, state dir and audit log in this directory (default: a temporary one, removed at the end)")
	fs.StringVar(&opts.Listen, "listen", "127.0.0.1:0", "keyhole's address")
	fs.BoolVar(&opts.KeepRunning, "keep-running", false, "after the demo, keep keyhole and the echo server running until Ctrl-C and print the curl lines to try")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("demo: unexpected argument %q", fs.Arg(0))
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("demo: find the keyhole binary: %w", err)
	}
	opts.Keyhole = exe
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return demo.Run(ctx, opts, stdout)
}

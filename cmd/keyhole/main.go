// Command keyhole is an HTTPS egress proxy that keeps real credentials out of
// AI agents. Run "keyhole help" for its commands; the README has the guide.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		var ee exitError
		if !errors.As(err, &ee) {
			fmt.Fprintf(os.Stderr, "keyhole: %v\n", err)
		}
		os.Exit(1)
	}
}

// exitError ends the program with status 1 after the command has already
// reported what went wrong.
type exitError struct{}

func (exitError) Error() string { return "failed" }

const usage = `keyhole: an HTTPS egress proxy that keeps real credentials out of AI agents

usage:
  keyhole serve [flags]              run the proxy until SIGINT/SIGTERM
  keyhole demo [--keep-running] [--dir DIR]
                                     offline quick start: keyhole, a local echo server, curl lines
  keyhole check [RULES]              validate a rules file
  keyhole ca init                    create the CA in the state dir if missing
  keyhole ca cert                    print the CA certificate (PEM)
  keyhole keys init                  create every key replicas share in the state dir; print their paths
  keyhole env [--agent NAME] [--proxy URL] [--ttl D]
                                     print the exports an agent's shell needs
  keyhole audit tail [-f] [--agent A] [--host H] [--secret S] [--token ID] [--denied] [--since 10m] [--json] [FILE]
  keyhole audit summary [--since 1h] [--json] [FILE]
                                     read the audit log
  keyhole audit verify [FILE...]     check the log's hash chain, oldest file first
  keyhole token mint --agent NAME --ttl 15m [--secrets A,B] [--hosts H,..] [--methods GET,..] [--id ID]
  keyhole token attenuate TOKEN [--secrets ..] [--hosts ..] [--methods ..] [--ttl ..]
  keyhole token revoke [--force] ID|TOKEN
  keyhole token inspect TOKEN        per-task agent tokens
  keyhole secret set NAME            store a secret read from stdin in the encrypted store
  keyhole secret ls [--json]         list the store (names, origins, times, fingerprints)
  keyhole secret rm NAME             delete a stored secret
  keyhole share SECRET --to R [--views N] [--expires D] [--note T] [--print]
  keyhole share ls [--json]          one-time share links (hand-offs to humans)
  keyhole share revoke ID
  keyhole health                     exit 0 if the admin listener's /healthz answers
  keyhole help                       show this help (flags: keyhole COMMAND -h)

Settings come from KEYHOLE_* environment variables; a flag of the same name
(--listen for KEYHOLE_LISTEN, ...) overrides each. See the README.
`

// run dispatches to a command.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError{}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, stderr)
	case "check":
		return check(rest, stdout, stderr)
	case "demo":
		return demoCommand(ctx, rest, stdout, stderr)
	case "ca":
		return caCommand(rest, stdout, stderr)
	case "keys":
		return keysCommand(rest, stdout, stderr)
	case "env":
		return envCommand(rest, stdout, stderr)
	case "token":
		return tokenCommand(rest, stdout, stderr)
	case "audit":
		return auditCommand(rest, stdout, stderr)
	case "health":
		return health(rest, stdout, stderr)
	case "secret":
		return secretCommand(rest, os.Stdin, stdout, stderr)
	case "share":
		return shareCommand(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q; run \"keyhole help\"", cmd)
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"keyhole/secret"
	"keyhole/store"
)

// secretCommand runs "keyhole secret set|ls|rm", on the store in the state
// dir.
func secretCommand(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("secret: want set, ls or rm")
	}
	sub, args := args[0], args[1:]
	var asJSON bool
	s, rest, err := parseSettings("secret "+sub, args, stderr, func(fs *flag.FlagSet) {
		if sub == "ls" {
			fs.BoolVar(&asJSON, "json", false, "print one JSON object a line")
		}
	})
	if err != nil {
		return err
	}
	file, err := store.Open(s.StateDir, os.Getenv(store.KeyEnv))
	if err != nil {
		return fmt.Errorf("secret %s: %w", sub, err)
	}
	ctx := context.Background()
	st, closeStore, err := commandStore(ctx, s, file)
	if err != nil {
		return fmt.Errorf("secret %s: %w", sub, err)
	}
	defer closeStore()
	switch sub {
	case "set":
		if len(rest) != 1 {
			return errors.New("secret set: want one NAME; the value is read from stdin, never from an argument (printf %s \"$VALUE\" | keyhole secret set NAME)")
		}
		return secretSet(ctx, st, rest[0], stdin, stderr)
	case "ls":
		if len(rest) != 0 {
			return errors.New("secret ls: takes no arguments")
		}
		return secretList(ctx, st, asJSON, stdout)
	case "rm":
		if len(rest) != 1 {
			return errors.New("secret rm: want one NAME")
		}
		if err := st.Delete(ctx, rest[0]); err != nil {
			return fmt.Errorf("secret rm: %w", err)
		}
		return nil
	}
	return fmt.Errorf("secret: unknown command %q (want set, ls or rm)", sub)
}

// secretSet stores the value read from stdin, one trailing newline
// trimmed, under name.
func secretSet(ctx context.Context, st store.Store, name string, stdin io.Reader, stderr io.Writer) error {
	if err := store.CheckName(name); err != nil {
		return fmt.Errorf("secret set: %w", err)
	}
	if f, ok := stdin.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprintln(stderr, "keyhole: reading the value from the terminal; end it with Ctrl-D")
		}
	}
	b, err := io.ReadAll(io.LimitReader(stdin, store.MaxValueSize+2))
	if err != nil {
		return fmt.Errorf("secret set: read stdin: %w", err)
	}
	defer clear(b)
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if err := st.Put(ctx, store.Entry{Name: name, Value: secret.New(b), Origin: store.OriginSet}); err != nil {
		return fmt.Errorf("secret set: %w", err)
	}
	return nil
}

// secretList prints every entry without its value.
func secretList(ctx context.Context, st store.Store, asJSON bool, stdout io.Writer) error {
	list, err := st.List(ctx)
	if err != nil {
		return fmt.Errorf("secret ls: %w", err)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		for _, in := range list {
			if err := enc.Encode(in); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tORIGIN\tOWNER\tCREATED\tUPDATED\tEXPIRES\tFINGERPRINT")
	for _, in := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", in.Name, in.Origin, dash(in.Owner),
			in.Created.UTC().Format(time.RFC3339), in.Updated.UTC().Format(time.RFC3339), expiry(in.Expires), in.Fingerprint)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func expiry(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

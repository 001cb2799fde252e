package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"keyhole/handoff"
	"keyhole/rules"
)

// shareCommand runs "keyhole share SECRET --to R ...", "keyhole share ls"
// and "keyhole share revoke ID", on the hand-off state in the state dir
// (which a running keyhole serve shares).
func shareCommand(args []string, stdout, stderr io.Writer) error {
	sub := ""
	if len(args) > 0 && (args[0] == "ls" || args[0] == "revoke") {
		sub, args = args[0], args[1:]
	}
	var (
		req       handoff.ShareRequest
		expires   time.Duration
		printLink bool
		asJSON    bool
	)
	s, rest, err := parseSettings("share "+sub, args, stderr, func(fs *flag.FlagSet) {
		switch sub {
		case "":
			fs.StringVar(&req.To, "to", "", "the recipient (a name of handoff.recipients)")
			fs.IntVar(&req.Views, "views", 1, fmt.Sprintf("views the link allows (1 to %d)", handoff.MaxViews))
			fs.DurationVar(&expires, "expires", handoff.DefaultExpiry, "how long the link works (at most handoff.max_ttl)")
			fs.StringVar(&req.Note, "note", "", "a line shown with the link")
			fs.BoolVar(&printLink, "print", false, "print the link on stdout instead of delivering it to the recipient's webhook")
		case "ls":
			fs.BoolVar(&asJSON, "json", false, "print one JSON object a line")
		}
	})
	if err != nil {
		return err
	}
	ctx := context.Background()
	state, closeState, err := commandHandoffState(ctx, s)
	if err != nil {
		return fmt.Errorf("share: %w", err)
	}
	defer closeState()
	switch sub {
	case "ls":
		if len(rest) != 0 {
			return errors.New("share ls: takes no arguments")
		}
		return shareList(ctx, state, asJSON, stdout)
	case "revoke":
		if len(rest) != 1 {
			return errors.New("share revoke: want one ID (keyhole share ls lists them)")
		}
		if err := state.RevokeShare(ctx, rest[0]); err != nil {
			return fmt.Errorf("share revoke: %w", err)
		}
		fmt.Fprintf(stderr, "keyhole: share %s revoked; its link no longer opens\n", rest[0])
		return nil
	}
	if len(rest) != 1 || req.To == "" {
		return errors.New("share: want SECRET --to RECIPIENT (keyhole share STRIPE_KEY --to alice)")
	}
	req.Secret, req.ExpiresIn = rest[0], expires.String()
	loader, file := sourceLoader(s, true, nil)
	st, done, err := commandLoaderStore(ctx, s, loader, file)
	if err != nil {
		return fmt.Errorf("share: %w", err)
	}
	defer done()
	set, err := loader.Load(ctx, s.Rules, nil)
	if err != nil {
		printErrors(stderr, err)
		return exitError{}
	}
	if st == nil {
		return errors.New("share: the store could not be opened")
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	svc, err := newHandoff(handoffDeps{settings: s, store: st, state: state, log: log, rules: func() *rules.Set { return set }})
	if err != nil {
		return fmt.Errorf("share: %w", err)
	}
	c, link, err := svc.Share(ctx, req, handoff.ShareOptions{NoDelivery: printLink})
	if err != nil {
		return fmt.Errorf("share: %w", err)
	}
	if printLink {
		fmt.Fprintln(stdout, link.Reveal())
	}
	how := "delivered to " + c.To
	if printLink {
		how = "for " + c.To + ", printed (not delivered)"
	}
	fmt.Fprintf(stderr, "keyhole: share %s of %s %s; it expires at %s\n", c.ID, req.Secret, how, c.ExpiresAt.UTC().Format(time.RFC3339))
	return nil
}

// shareList prints every share, without ciphertexts.
func shareList(ctx context.Context, state handoff.State, asJSON bool, stdout io.Writer) error {
	shares, err := state.ListShares(ctx)
	if err != nil {
		return fmt.Errorf("share ls: %w", err)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		for _, sh := range shares {
			if err := enc.Encode(map[string]any{"id": sh.ID, "agent": sh.Agent, "secret": sh.Secret, "to": sh.To,
				"status": sh.Status, "views": sh.Views, "views_left": sh.ViewsLeft, "created": sh.Created, "expires": sh.Expires}); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSECRET\tTO\tBY\tSTATUS\tVIEWS LEFT\tEXPIRES")
	for _, sh := range shares {
		by := sh.Agent
		if by == "" {
			by = "(operator)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\n", sh.ID, sh.Secret, sh.To, by, sh.Status, sh.ViewsLeft, sh.Views, sh.Expires.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

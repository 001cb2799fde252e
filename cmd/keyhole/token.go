package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"time"

	"keyhole/rules"
	"keyhole/tokens"
)

// narrowing holds the flags that narrow a token.
type narrowing struct {
	secrets, hosts, methods string
	ttl                     time.Duration
}

func (n *narrowing) register(fs *flag.FlagSet) {
	fs.StringVar(&n.secrets, "secrets", "", "comma-separated secret names the token may use")
	fs.StringVar(&n.hosts, "hosts", "", "comma-separated host patterns the token may reach")
	fs.StringVar(&n.methods, "methods", "", "comma-separated HTTP methods the token may use")
	fs.DurationVar(&n.ttl, "ttl", 0, "how long the token lives, e.g. 15m")
}

// restriction turns the flags into a tokens.Restriction: an unset flag
// adds nothing.
func (n *narrowing) restriction() tokens.Restriction {
	return tokens.Restriction{
		Secrets: splitList(n.secrets),
		Hosts:   splitList(n.hosts),
		Methods: splitList(n.methods),
		TTL:     n.ttl,
	}
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	if out == nil {
		return []string{} // "--secrets ," narrows to nothing: Restriction refuses it
	}
	return out
}

// tokenCommand runs "keyhole token mint|attenuate|revoke|inspect".
func tokenCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("token: want mint, attenuate, revoke or inspect")
	}
	sub, args := args[0], args[1:]
	var n narrowing
	var agent, id string
	var force bool
	extra := func(fs *flag.FlagSet) {
		if sub == "revoke" {
			fs.BoolVar(&force, "force", false, "revoke an ID even though no token with it was minted here")
		}
		if sub == "mint" || sub == "attenuate" {
			n.register(fs)
		}
		if sub == "mint" {
			fs.StringVar(&agent, "agent", "", "the agent the token is for (required)")
			fs.StringVar(&id, "id", "", "the token's id (default random)")
		}
	}
	s, rest, err := parseSettings("token "+sub, args, stderr, extra)
	if err != nil {
		return err
	}
	now := time.Now()
	switch sub {
	case "mint":
		if len(rest) > 0 {
			return fmt.Errorf("token mint: unexpected argument %q", rest[0])
		}
		return mint(s, agent, id, n.restriction(), now, stdout, stderr)
	case "attenuate":
		if len(rest) != 1 {
			return errors.New("token attenuate: want exactly one TOKEN argument")
		}
		child, err := tokens.Attenuate(rest[0], n.restriction(), now)
		if err != nil {
			return fmt.Errorf("token attenuate: %w", err)
		}
		if err := tokens.RecordMinted(s.StateDir, child); err != nil {
			// Attenuating needs no state dir; only revoking the child by
			// its id will then need --force.
			fmt.Fprintf(stderr, "keyhole: token attenuate: %v (revoke it by token, or by id with --force)\n", err)
		}
		return printToken(child, stdout, stderr)
	case "revoke":
		if len(rest) != 1 {
			return errors.New("token revoke: want exactly one ID or TOKEN argument")
		}
		return revoke(s, rest[0], force, now, stderr)
	case "inspect":
		if len(rest) != 1 {
			return errors.New("token inspect: want exactly one TOKEN argument")
		}
		info, err := tokens.Inspect(rest[0])
		if err != nil {
			return fmt.Errorf("token %w", err)
		}
		fmt.Fprintf(stdout, "agent: %s\nid: %s\nchain: %s\n", info.Agent, info.ID, strings.Join(info.IDs, " > "))
		if !info.Expires.IsZero() {
			fmt.Fprintf(stdout, "expires: %s (%s)\n", info.Expires.Format(time.RFC3339), expiresIn(info.Expires, now))
		}
		for _, c := range info.Caveats {
			fmt.Fprintf(stdout, "caveat: %s\n", c)
		}
		fmt.Fprintln(stdout, "(not verified: inspect reads a token without the key)")
		return nil
	}
	return fmt.Errorf("token: unknown command %q; want mint, attenuate, revoke or inspect", sub)
}

// mint checks the request against the rules, so that a token is never
// minted for an agent that does not exist or for secrets the agent may not
// use, then mints it with the state dir's key.
func mint(s settings, agent, id string, r tokens.Restriction, now time.Time, stdout, stderr io.Writer) error {
	if agent == "" {
		return errors.New("token mint: --agent is required")
	}
	if r.TTL <= 0 {
		return errors.New("token mint: --ttl is required (for example --ttl 15m)")
	}
	set, err := rules.Load(s.Rules)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("token mint: no rules file %s: pass --rules FILE or set KEYHOLE_RULES to the file keyhole serve uses, which mint checks the agent against", s.Rules)
	}
	if err != nil {
		printErrors(stderr, err)
		return fmt.Errorf("token mint: the rules file %s must load to check the agent", s.Rules)
	}
	a := set.Agents[agent]
	if a == nil {
		return fmt.Errorf("token mint: %s has no agent %q", s.Rules, agent)
	}
	for _, name := range r.Secrets {
		if !slices.Contains(a.Secrets, name) && !a.MayUseDatabase(name) {
			return fmt.Errorf("token mint: agent %s may not use secret %s (its secrets: %s)", agent, name, strings.Join(a.Secrets, ", "))
		}
	}
	key, err := tokens.LoadOrCreateKey(s.StateDir)
	if err != nil {
		return err
	}
	tok, err := mintRecorded(s, key, agent, id, r, now)
	if err != nil {
		return fmt.Errorf("token mint: %w", err)
	}
	return printToken(tok, stdout, stderr)
}

// mintRecorded mints a token and records its id in the state dir's minted
// list, so that "token revoke ID" knows it. A token whose id could not be
// recorded is not returned.
func mintRecorded(s settings, key tokens.Key, agent, id string, r tokens.Restriction, now time.Time) (string, error) {
	tok, err := tokens.Mint(key, agent, id, r, now)
	if err != nil {
		return "", err
	}
	if err := tokens.RecordMinted(s.StateDir, tok); err != nil {
		return "", err
	}
	return tok, nil
}

// revoke revokes an id, or a token's own id, and says what it revoked. An
// id that no token minted here carries is refused unless force is set: it
// is most likely a typo, which would leave the real token valid.
func revoke(s settings, idOrToken string, force bool, now time.Time, stderr io.Writer) error {
	var what string
	if tokens.LooksLikeToken(idOrToken) {
		info, err := tokens.Inspect(idOrToken)
		if err != nil {
			return fmt.Errorf("token revoke: %w", err)
		}
		what = describeToken(info.Agent, info.Expires, now)
	} else {
		m, ok, err := tokens.LookupMinted(s.StateDir, idOrToken)
		switch {
		case err != nil:
			return fmt.Errorf("token revoke: %w", err)
		case ok:
			what = describeToken(m.Agent, m.Expires, now)
		case !force:
			return fmt.Errorf("token revoke: no token with id %q was minted with the state dir %s; check the id (keyhole token inspect TOKEN shows it), or pass --force to revoke it anyway", idOrToken, s.StateDir)
		default:
			what = "not minted here; revoked because of --force"
		}
	}
	id, err := tokens.Revoke(s.StateDir, idOrToken, now)
	if err != nil {
		return fmt.Errorf("token %w", err)
	}
	if err := revokeShared(s, id); err != nil {
		return fmt.Errorf("token revoke: %s is revoked in %s but not yet on the other replicas: %w", id, s.StateDir, err)
	}
	fmt.Fprintf(stderr, "revoked: %s (%s), and every token attenuated from it\n", id, what)
	return nil
}

// describeToken is "agent billing, expires 2026-11-26T10:45:00Z, in 15m0s".
func describeToken(agent string, expires, now time.Time) string {
	return fmt.Sprintf("agent %s, expires %s, %s", agent, expires.UTC().Format(time.RFC3339), expiresIn(expires, now))
}

// printToken writes the token alone on stdout, so T=$(keyhole token ...)
// works, and its id on stderr.
func printToken(tok string, stdout, stderr io.Writer) error {
	info, err := tokens.Inspect(tok)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	fmt.Fprintf(stderr, "id: %s\n", info.ID)
	return nil
}

func expiresIn(t, now time.Time) string {
	if d := t.Sub(now); d > 0 {
		return "in " + d.Round(time.Second).String()
	}
	return "expired"
}

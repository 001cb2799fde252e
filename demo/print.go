package demo

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
)

// printer writes the demo's narration. Write errors are ignored: the demo
// checks itself, and a closed terminal is no reason to stop it midway.
type printer struct{ w io.Writer }

func (p *printer) printf(format string, args ...any) { fmt.Fprintf(p.w, format, args...) }

func (p *printer) intro(dir string, temporary bool, upstream, proxy string, f *files) {
	p.printf("keyhole demo: everything runs on 127.0.0.1; nothing leaves this machine.\n\n")
	kept := "kept"
	if temporary {
		kept = "removed when the demo ends"
	}
	p.printf("  files      %s (%s)\n", dir, kept)
	p.printf("  rules      %s: secret %s may go to %s only, in Authorization\n", f.rules, secretName, allowedHost)
	p.printf("  upstream   a local HTTPS echo server at %s; the rules pin %s and %s to it (resolve:),\n", upstream, allowedHost, otherHost)
	p.printf("             and keyhole trusts its CA (KEYHOLE_UPSTREAM_CA_FILE=%s)\n", filepath.Base(f.upstreamCA))
	p.printf("  keyhole    listening on %s, state dir %s, audit log %s\n", proxy, f.state, f.audit)
	p.printf("  the agent  knows only the placeholder %s\n", placeholder)
}

func (p *printer) step(title, command string) {
	p.printf("\n%s\n$ %s\n", title, command)
}

func (p *printer) response(status int, body string) {
	p.printf("HTTP %d %s\n", status, http.StatusText(status))
	p.lines(strings.Split(body, "\n"))
}

func (p *printer) lines(lines []string) {
	for _, l := range lines {
		p.printf("  %s\n", l)
	}
}

func (p *printer) note(s string) { p.printf("-> %s\n", s) }

func (p *printer) outro(dir string, temporary bool) {
	p.printf("\nDone: injection, scrubbing, a refusal and the audit log all behaved as described.\n")
	if temporary {
		p.printf("Run `keyhole demo --keep-running` to try the curl lines yourself, or `keyhole demo --dir DIR` to keep the files.\n")
		return
	}
	p.printf("The files are in %s: `keyhole audit tail %s` reads the audit log.\n", dir, filepath.Join(dir, "audit.jsonl"))
}

// byHand prints what to paste into a second terminal while the demo keeps
// running.
func (p *printer) byHand(proxy string, f *files, allowed, refused string) {
	p.printf("\nkeyhole and the echo server keep running; press Ctrl-C to stop them.\n")
	p.printf("In a second terminal, try the requests yourself:\n\n")
	p.printf("  %s\n  %s\n", allowed, refused)
	p.printf("  keyhole audit tail %s\n", f.audit)
	p.printf("\nor with keyhole env (in a subshell, so your own shell keeps its settings):\n\n")
	p.printf("  (eval \"$(KEYHOLE_STATE_DIR=%s keyhole env --rules %s --proxy http://%s)\"; curl -s -H \"Authorization: Bearer $%s\" https://%s/anything)\n",
		f.state, f.rules, proxy, secretName, allowedHost)
}

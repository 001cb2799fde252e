package pages_test

import (
	"context"
	"log/slog"
	"os"
	"os/signal"

	"keyhole/certs"
	"keyhole/handoff"
	"keyhole/handoff/pages"
)

// Serving the pages on the handoff listener, as keyhole serve does: a leaf
// of keyhole's CA for base_url's host, until the process is interrupted.
func Example() {
	var svc handoff.Pages // the hand-off service (*handoff.Service)
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ca, err := certs.LoadOrCreate(os.Getenv("KEYHOLE_STATE_DIR"), certs.Options{})
	if err != nil {
		log.Error("keyhole's CA", "error", err)
		return
	}
	ln, err := pages.Listen(pages.ListenConfig{
		Addr:    "0.0.0.0:8443",
		BaseURL: "https://keyhole.example.com:8443",
		CA:      ca,
	})
	if err != nil {
		log.Error("handoff listener", "error", err)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := pages.Serve(ctx, ln, pages.New(svc, pages.Options{Logger: log}), log); err != nil {
		log.Error("handoff listener", "error", err)
	}
}

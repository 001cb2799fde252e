package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"keyhole/certs"
	"keyhole/handoff"
	"keyhole/rules"
)

// A STAND-IN until package handoff/pages (the pages humans open, with
// their HTML, JavaScript and TLS listener helper) is merged: it serves the
// JSON half of the pages' protocol (handoff/protocol.go) so that the
// service works end to end through the binary, and no HTML. At merge,
// listenHandoff becomes pages.Listen, serveHandoff pages.Serve and
// handoffPages pages.New, and this file goes.

// listenHandoff binds the handoff listener with TLS: cert_file/key_file,
// or a leaf of keyhole's CA for base_url's host.
func listenHandoff(h *rules.Handoff, ca *certs.Authority) (net.Listener, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	if h.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(h.CertFile, h.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("handoff listener: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	} else {
		u, err := url.Parse(h.BaseURL)
		if err != nil {
			return nil, fmt.Errorf("handoff listener: base_url: %w", err)
		}
		host := u.Hostname()
		if _, err := ca.Leaf(host); err != nil {
			return nil, fmt.Errorf("handoff listener: leaf for %s: %w", host, err)
		}
		conf.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return ca.Leaf(host) }
	}
	ln, err := net.Listen("tcp", h.Listen)
	if err != nil {
		return nil, fmt.Errorf("handoff listener: %w", err)
	}
	return tls.NewListener(ln, conf), nil
}

// serveHandoff answers h on ln until ctx ends.
func serveHandoff(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// handoffPages serves the JSON routes of the protocol.
func handoffPages(svc handoff.Pages, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		v := handoff.Viewer{Addr: r.RemoteAddr, UserAgent: r.UserAgent()}
		ctx := r.Context()
		kind, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		id, action, _ := strings.Cut(rest, "/")
		if _, err := handoff.Decode(id, handoff.IDBytes); err != nil {
			pageJSON(w, http.StatusNotFound, handoff.GoneResponse{Status: "not_found"})
			return
		}
		var out any
		var err error
		switch route := kind + " " + r.Method + " " + action; route {
		case "s GET meta":
			out, err = svc.ShareMeta(ctx, id)
		case "s POST reveal":
			out, err = svc.Reveal(ctx, id, v)
		case "i GET meta":
			out, err = svc.IntakeMeta(ctx, id)
		case "i POST answer":
			var a handoff.AnswerRequest
			if err = readPageJSON(r, &a); err == nil {
				err = svc.Answer(ctx, id, a, v)
			}
		case "i POST decline":
			var d handoff.DeclineRequest
			if err = readPageJSON(r, &d); err == nil {
				err = svc.Decline(ctx, id, d, v)
			}
		default:
			pageJSON(w, http.StatusNotFound, handoff.GoneResponse{Status: "not_found"})
			return
		}
		var gone *handoff.GoneError
		var bad *handoff.BadRequest
		switch {
		case err == nil && out == nil:
			w.WriteHeader(http.StatusNoContent)
		case err == nil:
			pageJSON(w, http.StatusOK, out)
		case errors.As(err, &gone):
			pageJSON(w, http.StatusGone, handoff.GoneResponse{Status: gone.Status})
		case errors.Is(err, handoff.ErrNotFound):
			pageJSON(w, http.StatusNotFound, handoff.GoneResponse{Status: "not_found"})
		case errors.Is(err, handoff.ErrBadCapability):
			pageJSON(w, http.StatusForbidden, map[string]string{"error": "This link is not valid for answering."})
		case errors.Is(err, handoff.ErrDamaged):
			pageJSON(w, http.StatusBadRequest, map[string]string{"error": "This link is damaged."})
		case errors.As(err, &bad):
			pageJSON(w, http.StatusBadRequest, map[string]string{"error": bad.Message})
		default:
			log.Error("handoff page failed", "error", err)
			pageJSON(w, http.StatusInternalServerError, map[string]string{"error": "keyhole could not answer."})
		}
	})
}

// readPageJSON decodes a bounded JSON body.
func readPageJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 256<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &handoff.BadRequest{Message: "The request is not valid."}
	}
	return nil
}

func pageJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

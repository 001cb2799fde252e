package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// health checks a running keyhole's admin listener: exit 0 when /healthz
// answers 200. It is what the container image's HEALTHCHECK runs, since the
// image has no shell or curl.
func health(args []string, stdout, stderr io.Writer) error {
	s, rest, err := parseSettings("health", args, stderr)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("health: unexpected argument %q", rest[0])
	}
	addr := s.AdminListen
	if addr == "" {
		return fmt.Errorf("health: KEYHOLE_ADMIN_LISTEN is not set, so there is nothing to check")
	}
	if strings.HasPrefix(addr, ":") || strings.HasPrefix(addr, "0.0.0.0:") {
		addr = "127.0.0.1" + addr[strings.LastIndexByte(addr, ':'):]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Transport{Proxy: nil}).RoundTrip(req)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s answered %s", addr, resp.Status)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

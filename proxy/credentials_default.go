package proxy

import (
	"log/slog"
	"net/http"
	"time"

	"keyhole/credential"
	"keyhole/credential/mint"
)

// defaultCredentials returns the Credentials of a proxy whose Deps name
// none: a Minter that reaches token endpoints through the proxy's own
// transport, so the same verified TLS, pins and block_private apply.
func defaultCredentials(t *http.Transport, timeout time.Duration, log *slog.Logger, shared credential.Shared) Credentials {
	m, err := mint.New(mint.Config{Client: &http.Client{Transport: t}, Log: log, Timeout: timeout, Shared: shared})
	if err != nil {
		return nil // only a nil client fails
	}
	return m
}

var _ Credentials = (*mint.Minter)(nil)

package proxy

import (
	"log/slog"
	"net/http"
)

// defaultCredentials returns the Credentials of a proxy whose Deps name
// none. Until the kinds are built it is nil: a minted kind's request is
// refused with secret_unavailable.
func defaultCredentials(_ *http.Transport, _ *slog.Logger) Credentials { return nil }

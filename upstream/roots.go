package upstream

import (
	"crypto/x509"
	"fmt"
	"os"
)

// Roots returns the roots trusted for upstream servers: the system's plus
// the PEM certificates in file (KEYHOLE_UPSTREAM_CA_FILE), none when file
// is "". The error starts with "upstream CA file" for the caller to prefix.
func Roots(file string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if file == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("upstream CA file: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("upstream CA file %s: no PEM certificates found", file)
	}
	return pool, nil
}

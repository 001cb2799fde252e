package certs

import (
	"bytes"
	"fmt"
	"os"
	"strings"
)

// maxBundleSize bounds the system roots file read by WriteTrustBundle.
// Distribution bundles hold a few hundred KiB.
const maxBundleSize = 8 << 20

// SystemRootsFile returns the path of the system's PEM bundle of trusted
// roots. If SSL_CERT_FILE is set, it names the bundle (and must exist), as it
// does for Go, OpenSSL and curl. Otherwise SystemRootsFile returns the first
// file that exists among those Go's crypto/x509 reads on Linux:
//
//	/etc/ssl/certs/ca-certificates.crt                 Debian, Ubuntu, Gentoo
//	/etc/pki/tls/certs/ca-bundle.crt                   Fedora, RHEL 6
//	/etc/ssl/ca-bundle.pem                             OpenSUSE
//	/etc/pki/tls/cacert.pem                            OpenELEC
//	/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem  CentOS, RHEL 7
//	/etc/ssl/cert.pem                                  Alpine, macOS, BSDs
func SystemRootsFile() (string, error) {
	if f := os.Getenv("SSL_CERT_FILE"); f != "" {
		if _, err := os.Stat(f); err != nil {
			return "", fmt.Errorf("certs: system roots from SSL_CERT_FILE: %w", err)
		}
		return f, nil
	}
	// The list and its order are crypto/x509's (root_linux.go).
	files := []string{
		"/etc/ssl/certs/ca-certificates.crt",
		"/etc/pki/tls/certs/ca-bundle.crt",
		"/etc/ssl/ca-bundle.pem",
		"/etc/pki/tls/cacert.pem",
		"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
		"/etc/ssl/cert.pem",
	}
	for _, f := range files {
		if info, err := os.Stat(f); err == nil && info.Mode().IsRegular() {
			return f, nil
		}
	}
	return "", fmt.Errorf("certs: no system roots bundle found (looked for %s); install ca-certificates or set SSL_CERT_FILE",
		strings.Join(files, ", "))
}

// WriteTrustBundle writes to path the system's trusted roots (from
// [SystemRootsFile]) followed by the CA certificate, for agents' tools that
// take a single CA file (curl's CURL_CA_BUNDLE, Python's REQUESTS_CA_BUNDLE,
// pip, git) and would otherwise stop trusting the public roots. The file gets
// mode 0644 and is replaced atomically, so a tool reading it meanwhile sees
// the old bundle or the new one.
func (a *Authority) WriteTrustBundle(path string) error {
	roots, err := SystemRootsFile()
	if err != nil {
		return err
	}
	data, _, err := readFile(roots, maxBundleSize)
	if err != nil {
		return fmt.Errorf("certs: write trust bundle %s: read system roots: %w", path, err)
	}
	var buf bytes.Buffer
	buf.Write(data)
	if len(data) > 0 && data[len(data)-1] != '\n' {
		buf.WriteByte('\n')
	}
	buf.Write(a.CertPEM())
	if err := writeReplace(path, buf.Bytes(), certMode); err != nil {
		return fmt.Errorf("certs: write trust bundle %s: %w", path, err)
	}
	return nil
}

package certs

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"slices"
	"strings"
)

// maxBundleSize bounds the system roots file read by WriteTrustBundle.
// Distribution bundles hold a few hundred KiB.
const maxBundleSize = 8 << 20

// TrustBundleEnv is the variable `keyhole env` exports with the path of the
// trust bundle it wrote, next to SSL_CERT_FILE naming the same file. When
// SSL_CERT_FILE equals it, SSL_CERT_FILE is keyhole's own bundle, not the
// system's roots, even if that file is gone (the state dir was re-created).
const TrustBundleEnv = "KEYHOLE_TRUST_BUNDLE"

// bundleMarker opens every bundle WriteTrustBundle writes, so that a later
// run recognizes one even when only SSL_CERT_FILE points at it.
const bundleMarker = "# keyhole trust bundle: the system's roots and keyhole's CA. Written by keyhole env; do not use it as the system roots.\n"

// systemRootsFiles are the files Go's crypto/x509 reads on Linux, in its
// order (root_linux.go).
var systemRootsFiles = []string{
	"/etc/ssl/certs/ca-certificates.crt",                // Debian, Ubuntu, Gentoo
	"/etc/pki/tls/certs/ca-bundle.crt",                  // Fedora, RHEL 6
	"/etc/ssl/ca-bundle.pem",                            // OpenSUSE
	"/etc/pki/tls/cacert.pem",                           // OpenELEC
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // CentOS, RHEL 7
	"/etc/ssl/cert.pem",                                 // Alpine, macOS, BSDs
}

// SystemRootsFile returns the path of the system's PEM bundle of trusted
// roots. If SSL_CERT_FILE is set, it names the bundle (and must exist), as it
// does for Go, OpenSSL and curl, unless it names a bundle keyhole wrote
// (one that starts with keyhole's marker line, or the path in
// [TrustBundleEnv]): after `eval "$(keyhole env)"` SSL_CERT_FILE is
// keyhole's own bundle, and reading it as the system's roots would stack
// keyhole's CA again on every run. Otherwise SystemRootsFile returns the
// first file that exists among those Go's crypto/x509 reads on Linux
// (/etc/ssl/certs/ca-certificates.crt first), and, if there is none, a
// keyhole bundle SSL_CERT_FILE names ([Authority.WriteTrustBundle] drops the
// keyhole CAs it holds).
func SystemRootsFile() (string, error) {
	var ours string
	if f := os.Getenv("SSL_CERT_FILE"); f != "" {
		if !isKeyholeBundle(f) {
			if _, err := os.Stat(f); err != nil {
				return "", fmt.Errorf("certs: system roots from SSL_CERT_FILE: %w", err)
			}
			return f, nil
		}
		ours = f
	}
	for _, f := range systemRootsFiles {
		if info, err := os.Stat(f); err == nil && info.Mode().IsRegular() {
			return f, nil
		}
	}
	if ours != "" {
		if info, err := os.Stat(ours); err == nil && info.Mode().IsRegular() {
			return ours, nil
		}
	}
	return "", fmt.Errorf("certs: no system roots bundle found (looked for %s); install ca-certificates or set SSL_CERT_FILE",
		strings.Join(systemRootsFiles, ", "))
}

// isKeyholeBundle reports whether path is a trust bundle keyhole wrote: the
// path `keyhole env` exported in TrustBundleEnv, or a file that starts with
// the marker.
func isKeyholeBundle(path string) bool {
	if path == os.Getenv(TrustBundleEnv) {
		return true
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, len(bundleMarker))
	n, _ := f.Read(head)
	return string(head[:n]) == bundleMarker
}

// WriteTrustBundle writes to path the system's trusted roots (from
// [SystemRootsFile]) followed by the CA certificate, for agents' tools that
// take a single CA file (curl's CURL_CA_BUNDLE, Python's REQUESTS_CA_BUNDLE,
// pip, git) and would otherwise stop trusting the public roots. Earlier
// keyhole CAs among the roots (from a state dir since re-created, or a
// bundle concatenated by hand) are left out, so writing the bundle again
// gives the same file. The file starts with a marker comment, gets mode
// 0644 and is replaced atomically, so a tool reading it meanwhile sees the
// old bundle or the new one.
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
	buf.WriteString(bundleMarker)
	writeRoots(&buf, data)
	buf.Write(a.CertPEM())
	if err := writeReplace(path, buf.Bytes(), certMode); err != nil {
		return fmt.Errorf("certs: write trust bundle %s: %w", path, err)
	}
	return nil
}

// writeRoots copies the PEM bundle data to buf without keyhole's marker
// and without any certificate that is a keyhole CA. Everything else is
// copied byte for byte (comments, other blocks, text a parser skips), and
// the copy ends in a newline.
func writeRoots(buf *bytes.Buffer, data []byte) {
	data = bytes.TrimPrefix(data, []byte(bundleMarker))
	for len(data) > 0 {
		block, rest := pem.Decode(data)
		if block == nil {
			buf.Write(data)
			break
		}
		// The block's own text is what pem.Decode consumed, minus the text
		// before its BEGIN line, which is kept.
		start := bytes.Index(data, []byte("-----BEGIN"))
		buf.Write(data[:start])
		if !isKeyholeCA(block) {
			buf.Write(data[start : len(data)-len(rest)])
		}
		data = rest
	}
	if b := buf.Bytes(); len(b) > 0 && b[len(b)-1] != '\n' {
		buf.WriteByte('\n')
	}
}

// isKeyholeCA reports whether block is a certificate keyhole's createCA
// made: a CA whose subject is CN=keyhole CA, O=keyhole.
func isKeyholeCA(block *pem.Block) bool {
	if block.Type != "CERTIFICATE" {
		return false
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return false
	}
	return cert.IsCA && cert.Subject.CommonName == caCommonName &&
		slices.Equal(cert.Subject.Organization, []string{caOrganization})
}

package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// maxCommonName is the upper bound RFC 5280 sets on a subject's common name.
const maxCommonName = 64

// mint signs a new leaf for host, which checkHost has accepted, valid from an
// hour before now until now plus the leaf validity or the CA's expiry,
// whichever comes first.
func (a *Authority) mint(host string, now time.Time) (*tls.Certificate, error) {
	caCert := a.ca.cert
	if !now.Before(caCert.NotAfter) {
		return nil, fmt.Errorf("certs: leaf for %q: the CA expired on %s; create a new CA and have agents trust it",
			host, caCert.NotAfter.UTC().Format(time.RFC3339))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: leaf for %q: generate key: %w", host, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(a.validity)
	if notAfter.After(caCert.NotAfter) {
		notAfter = caCert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	// Clients check only the SAN; the common name is for people reading the
	// certificate, and is left out when too long to be valid.
	if len(host) <= maxCommonName {
		tmpl.Subject = pkix.Name{CommonName: host}
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		tmpl.IPAddresses = []net.IP{ip.AsSlice()}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), a.ca.key)
	if err != nil {
		return nil, fmt.Errorf("certs: leaf for %q: sign: %w", host, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: leaf for %q: parse: %w", host, err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// checkHost rejects what cannot be a canonical host name or IP literal. It
// does not normalize: that is the caller's job, so that the cache key and the
// name in the certificate are the same string.
func checkHost(host string) error {
	if host == "" {
		return fmt.Errorf("certs: leaf: empty host")
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return fmt.Errorf("certs: leaf for %q: an IP address with a zone cannot be named in a certificate", host)
		}
		return nil
	}
	switch {
	case strings.Contains(host, "*"):
		return fmt.Errorf("certs: leaf for %q: wildcards are not minted; ask for the exact host", host)
	case strings.HasPrefix(host, "["):
		return fmt.Errorf("certs: leaf for %q: pass an IP address without brackets or port", host)
	case strings.Contains(host, ":"):
		return fmt.Errorf("certs: leaf for %q: host has a port; pass the host alone", host)
	case len(host) > 253:
		return fmt.Errorf("certs: leaf for %q: host is longer than 253 bytes", host)
	}
	for label := range strings.SplitSeq(host, ".") {
		if label == "" {
			return fmt.Errorf("certs: leaf for %q: host has an empty label (leading, trailing or double dot)", host)
		}
		if len(label) > 63 {
			return fmt.Errorf("certs: leaf for %q: label is longer than 63 bytes", host)
		}
		for _, c := range []byte(label) {
			if !isHostByte(c) {
				return fmt.Errorf("certs: leaf for %q: character %q is not allowed in a host name", host, c)
			}
		}
	}
	return nil
}

// isHostByte reports whether c may appear in a host name label. Underscores
// are allowed because real hosts use them, though RFC 952 does not.
func isHostByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

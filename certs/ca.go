package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"os/user"
	"path/filepath"
	"time"
)

// Names of the CA files inside the state directory, and their limits.
const (
	certFile = "ca.pem"
	keyFile  = "ca-key.pem"

	certMode = 0o644
	keyMode  = 0o600
	dirMode  = 0o700

	// maxPEMSize bounds what is read from ca.pem and ca-key.pem: a P-256
	// certificate or key is under 1 KiB; anything past 64 KiB is not one.
	maxPEMSize = 64 << 10

	// caCommonName and caOrganization name keyhole's CA; WriteTrustBundle
	// recognizes earlier keyhole CAs by them.
	caCommonName   = "keyhole CA"
	caOrganization = "keyhole"
)

// ca is a loaded, validated CA.
type ca struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// Init creates a CA in dir, as "keyhole ca init" does, unless one is there
// already. It creates dir with mode 0700 if it is missing, then writes
// ca-key.pem (mode 0600) and ca.pem (mode 0644). It reports whether it
// created the CA. When both files exist, Init validates them as [Load] does
// and changes nothing; when only one exists, it fails rather than overwrite
// it.
func Init(dir string) (created bool, err error) {
	_, created, err = ensure(dir)
	return created, err
}

// Load reads the CA in dir and returns an Authority that mints leaves with
// opts. It fails, with an error that names the file and the fix, when the CA
// is missing or half missing, when ca-key.pem is readable or writable by
// anyone but its owner, when a file is corrupt, when the key does not match
// the certificate, and when the certificate is not a CA or is outside its
// validity period.
func Load(dir string, opts Options) (*Authority, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c, err := readCA(dir)
	if err != nil {
		return nil, err
	}
	return newAuthority(c, opts), nil
}

// LoadOrCreate is [Init] followed by [Load], as "keyhole serve" needs: it
// creates the CA in dir on first use and loads it every time. Invalid opts
// are reported before anything is written.
func LoadOrCreate(dir string, opts Options) (*Authority, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c, _, err := ensure(dir)
	if err != nil {
		return nil, err
	}
	return newAuthority(c, opts), nil
}

// ensure loads the CA in dir, creating it first if neither file exists.
func ensure(dir string) (*ca, bool, error) {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, false, fmt.Errorf("certs: create state dir %s: %w; choose a directory keyhole may write", dir, err)
	}
	haveCert, haveKey, err := present(dir)
	if err != nil {
		return nil, false, err
	}
	if haveCert || haveKey {
		c, err := readCA(dir)
		return c, false, err
	}
	c, err := createCA(dir)
	if err != nil {
		return nil, false, err
	}
	return c, true, nil
}

// createCA generates a CA and writes it to dir, key first. Neither file may
// exist; if writing the certificate fails, the key just written is removed
// so that a retry starts clean.
func createCA(dir string) (*ca, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: generate CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	// The template follows mkcert's: only what a CA that signs server leaves
	// needs. crypto/x509 fills in the Subject Key Identifier for a CA.
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:         caCommonName,
			Organization:       []string{caOrganization},
			OrganizationalUnit: []string{creator()},
		},
		NotBefore:             now.Add(-time.Hour), // tolerate clients whose clocks lag
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("certs: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: parse new CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certs: encode CA key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})

	keyPath, certPath := filepath.Join(dir, keyFile), filepath.Join(dir, certFile)
	if err := writeNew(keyPath, keyPEM, keyMode); err != nil {
		return nil, fmt.Errorf("certs: create CA in %s: %w", dir, err)
	}
	if err := writeNew(certPath, certPEM, certMode); err != nil {
		os.Remove(keyPath)
		return nil, fmt.Errorf("certs: create CA in %s: %w", dir, err)
	}
	return &ca{cert: cert, key: key}, nil
}

// readCA loads and validates the CA in dir.
func readCA(dir string) (*ca, error) {
	certPath, keyPath := filepath.Join(dir, certFile), filepath.Join(dir, keyFile)
	haveCert, haveKey, err := present(dir)
	switch {
	case err != nil:
		return nil, err
	case !haveCert && !haveKey:
		return nil, fmt.Errorf("certs: no CA in %s (%s not found); run \"keyhole ca init\" to create one", dir, certPath)
	case !haveKey:
		return nil, fmt.Errorf("certs: %s exists but %s is missing; refusing to make a new CA over half of one: restore the key, or remove %s to create a new CA", certPath, keyPath, certPath)
	case !haveCert:
		return nil, fmt.Errorf("certs: %s exists but %s is missing; refusing to overwrite the key: restore the certificate, or remove %s to create a new CA", keyPath, certPath, keyPath)
	}

	keyPEM, info, err := readFile(keyPath, maxPEMSize)
	if err != nil {
		return nil, fmt.Errorf("certs: read CA key: %w", err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("certs: %s has mode %04o; the CA key must be private: chmod 600 %s", keyPath, perm, keyPath)
	}
	certPEM, _, err := readFile(certPath, maxPEMSize)
	if err != nil {
		return nil, fmt.Errorf("certs: read CA certificate: %w", err)
	}
	hint := fmt.Sprintf("restore it, or remove %s and %s and run \"keyhole ca init\" to create a new CA", certPath, keyPath)

	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("certs: %s holds no \"CERTIFICATE\" PEM block; %s", certPath, hint)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w; %s", certPath, err, hint)
	}
	block, _ = pem.Decode(keyPEM)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("certs: %s holds no PKCS#8 \"PRIVATE KEY\" PEM block; %s", keyPath, hint)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		// The parser's message is not repeated: it could quote key bytes.
		return nil, fmt.Errorf("certs: %s is not a valid PKCS#8 private key; %s", keyPath, hint)
	}
	key, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("certs: %s holds a %T, which cannot sign; %s", keyPath, parsed, hint)
	}
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("certs: %s does not match the certificate in %s; %s", keyPath, certPath, hint)
	}
	if err := checkCA(cert, time.Now()); err != nil {
		return nil, fmt.Errorf("certs: %s %w; remove %s and %s and run \"keyhole ca init\" to create a new CA", certPath, err, certPath, keyPath)
	}
	return &ca{cert: cert, key: key}, nil
}

// checkCA reports why cert cannot serve as keyhole's CA at now, if it cannot.
// The error reads after the certificate's path.
func checkCA(cert *x509.Certificate, now time.Time) error {
	switch {
	case !cert.BasicConstraintsValid || !cert.IsCA:
		return errors.New("is not a CA certificate (its basic constraints lack CA:TRUE)")
	case cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0:
		return errors.New("may not sign certificates (its key usage lacks keyCertSign)")
	case now.After(cert.NotAfter):
		return fmt.Errorf("expired on %s", cert.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(cert.NotBefore):
		return fmt.Errorf("is not valid until %s (is the system clock right?)", cert.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// present reports which of the two CA files exist in dir.
func present(dir string) (haveCert, haveKey bool, err error) {
	exists := func(name string) (bool, error) {
		_, err := os.Lstat(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("certs: %w", err)
		}
		return true, nil
	}
	if haveCert, err = exists(certFile); err != nil {
		return false, false, err
	}
	haveKey, err = exists(keyFile)
	return haveCert, haveKey, err
}

// readFile reads at most limit bytes of the regular file at path and returns
// them with the file's metadata, taken from the open file so that both
// describe the same file.
func readFile(path string, limit int64) ([]byte, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, nil, err
	}
	if int64(len(data)) > limit {
		return nil, nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, info, nil
}

// randomSerial returns a random 128-bit certificate serial number, as
// mkcert does (RFC 5280 allows up to 20 octets; CAs must use at least 64
// random bits).
func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("certs: generate serial number: %w", err)
	}
	return serial, nil
}

// creator names who made the CA, as user@hostname, so that a CA found in a
// trust store can be traced to the machine that holds its key.
func creator() string {
	name, host := "unknown", "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	if h, err := os.Hostname(); err == nil {
		host = h
	}
	return name + "@" + host
}

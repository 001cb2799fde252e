// Package certs holds keyhole's certificate authority and mints the leaf
// certificates that keyhole presents when it intercepts an agent's HTTPS
// connection.
//
// # The CA
//
// The CA lives in a state directory as two PEM files:
//
//	ca.pem      the CA certificate, mode 0644; agents' containers trust it
//	ca-key.pem  its PKCS#8 "PRIVATE KEY", mode 0600; it never leaves the host
//
// [Init] creates both files if neither exists and is idempotent, for
// "keyhole ca init". [Load] reads an existing CA and refuses, with an error
// that names the file and the fix, a key that others may read or write, a
// corrupt file, a key that does not match the certificate, a certificate that
// is not a CA or has expired, and a CA of which only one half is present.
// [LoadOrCreate] does both, for "keyhole serve". Neither ever overwrites an
// existing file of the pair: a new file is written to a temporary name and
// linked into place, so a crash never leaves half a key and two processes
// racing to create the CA cannot end up with a mismatched pair.
//
// Following FiloSottile/mkcert, the CA template is kept minimal: an ECDSA
// P-256 key, a random 128-bit serial, a subject naming keyhole and the
// user@hostname that created it, ten years of validity, IsCA with
// MaxPathLenZero (it can sign leaves but no intermediate), KeyUsageCertSign
// and KeyUsageCRLSign. crypto/x509 adds the Subject Key Identifier.
//
// # Leaves
//
// [Authority.Leaf] returns a certificate for one host name or IP literal,
// signed by the CA and meant for a [crypto/tls.Config] GetCertificate
// callback. Each leaf has a fresh P-256 key, so leaf keys are independent of
// each other and of the CA key (unlike goproxy's signer, which derives them
// from the CA key). Minting a leaf takes about 0.2 ms on a busy two-core
// machine, most of it signing and crypto/x509's check of the signature; the
// fresh key is about a tenth of that, too little to justify sharing one key
// across every host. Leaves are kept in a bounded LRU cache whose entries
// expire (a hit takes well under a microsecond and allocates nothing), and
// concurrent requests for the same uncached host mint once.
//
// # Trust bundles
//
// Tools such as curl, Python and Node replace, rather than extend, their
// trusted roots when pointed at a CA file. [Authority.WriteTrustBundle]
// therefore writes the system roots ([SystemRootsFile]) followed by the CA,
// so that an agent trusts keyhole without losing the public roots. The
// bundle starts with a marker line, and SystemRootsFile never takes a
// bundle keyhole wrote (SSL_CERT_FILE after `eval "$(keyhole env)"`) for
// the system's roots; earlier keyhole CAs among the roots are dropped. So
// writing the bundle again gives the same file, with exactly one keyhole
// CA, also after the state dir and its CA were re-created.
package certs

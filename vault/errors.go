package vault

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"

	"github.com/hashicorp/vault/api"
)

// describe turns an error of the Vault client into an operational sentence.
// It keeps the status and what it means, and drops Vault's own error text
// and the request URL's details: they could echo what keyhole sent.
func describe(err error, addr string) error {
	var re *api.ResponseError
	if errors.As(err, &re) {
		switch re.StatusCode {
		case 400:
			return errors.New("Vault refused the request as invalid (400)")
		case 401, 403:
			return fmt.Errorf("permission denied (%d): the token's policies do not allow this, or the token is not valid", re.StatusCode)
		case 404:
			return errors.New("Vault has no secret at this path (404)")
		case 429:
			return errors.New("Vault is rate limiting keyhole (429)")
		case 503:
			return errors.New("Vault is sealed or in standby (503)")
		}
		return fmt.Errorf("Vault answered %d", re.StatusCode)
	}
	var unknown x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	var host x509.HostnameError
	switch {
	case errors.As(err, &unknown), errors.As(err, &verify), errors.As(err, &host):
		return fmt.Errorf("Vault's TLS certificate at %s is not trusted (add its CA as vault.ca_file)", addr)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return fmt.Errorf("Vault at %s did not answer in time", addr)
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &oe) || errors.As(err, &ne) {
		return fmt.Errorf("Vault is unreachable at %s", addr)
	}
	return fmt.Errorf("the request to Vault at %s failed", addr)
}

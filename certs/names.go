package certs

// CertFile and KeyFile are the names of the CA's certificate and key in a
// state directory.
const (
	CertFile = certFile
	KeyFile  = keyFile
)

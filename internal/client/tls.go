package client

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
)

// WithTLS makes the client check servers' certificates with conf (its
// RootCAs, or its own verification) instead of the system's roots.
func WithTLS(conf *tls.Config) Option {
	return WithHTTPClient(&http.Client{Transport: TLSTransport(conf)})
}

// TLSTransport is http.DefaultTransport's settings with conf.
func TLSTransport(conf *tls.Config) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = conf
	return t
}

// TrustCA is the TLS configuration that trusts the certificate
// authorities of the PEM file path, and them alone: a server's
// certificate must chain to one of them and name the host of the URL.
func TrustCA(path string) (*tls.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("CA certificate %s: no PEM certificate in it; give the CA's certificate as PEM (-----BEGIN CERTIFICATE-----)", path)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// TrustFile is the TLS configuration that trusts a server when its
// certificate is the first one of the PEM file path, whatever signed it
// and whatever names it holds: for a daemon on this machine, which
// records the file it serves (it may be reached at an address the
// certificate does not name, by a client that does not trust its CA).
// The file is read at each handshake, as the daemon reads it again on
// SIGHUP.
func TrustFile(path string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The standard verification is replaced by the comparison
		// below, which is stricter: one certificate, byte for byte.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			data, err := os.ReadFile(path)
			if err != nil {
				return &PinError{File: path, Err: err}
			}
			block, _ := pem.Decode(data)
			if block == nil || block.Type != "CERTIFICATE" {
				return &PinError{File: path, Err: errors.New("no PEM certificate in it")}
			}
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, block.Bytes) {
				return &PinError{File: path, Err: errors.New("the daemon serves another certificate")}
			}
			return nil
		},
	}
}

// PinError is a daemon on this machine that does not serve the
// certificate of the file it recorded.
type PinError struct {
	File string
	Err  error
}

// Error says what to do: send the daemon SIGHUP when the file was
// replaced since it last read it.
func (e *PinError) Error() string {
	return fmt.Sprintf("the daemon's certificate is not the one in %s (%v): if the file was replaced, send the daemon SIGHUP to serve it", e.File, e.Err)
}

// CertificateError is a server whose certificate the client does not
// accept.
type CertificateError struct {
	URL string
	Err error
}

// Error says why the certificate is refused, and what to do.
func (e *CertificateError) Error() string {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		pin      *PinError
	)
	switch {
	case errors.As(e.Err, &pin):
		return pin.Error()
	case errors.As(e.Err, &unknown):
		return fmt.Sprintf("the certificate of %s is not signed by an authority this machine trusts (%v): if the server uses a private CA, pass the CA's certificate with --ca-cert FILE or $ROUTINES_CA_CERT (routines login stores it in the profile)", e.URL, e.Err)
	case errors.As(e.Err, &hostname):
		return fmt.Sprintf("the certificate of %s does not name its host (%v): use the URL with a name the certificate holds, or have the server serve one for this name", e.URL, e.Err)
	case errors.As(e.Err, &invalid):
		return fmt.Sprintf("the certificate of %s is not valid (%v): the server must serve a current certificate", e.URL, e.Err)
	}
	return fmt.Sprintf("the certificate of %s is refused (%v): pass the CA's certificate with --ca-cert FILE or $ROUTINES_CA_CERT", e.URL, e.Err)
}

// Unwrap returns the cause.
func (e *CertificateError) Unwrap() error { return e.Err }

// certificateError returns err as a *CertificateError when it is a
// refused certificate, else nil.
func certificateError(url string, err error) error {
	var (
		verify *tls.CertificateVerificationError
		pin    *PinError
	)
	if errors.As(err, &verify) || errors.As(err, &pin) {
		return &CertificateError{URL: url, Err: err}
	}
	return nil
}

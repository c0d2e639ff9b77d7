package server

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Certificate is the TLS certificate a daemon serves, read from a
// certificate file and a key file, and read again by Reload: the
// operator replaces the files and sends SIGHUP. Connections that are
// open keep the certificate they were made with; new ones get the new
// one. Safe for concurrent use.
type Certificate struct {
	certFile, keyFile string
	current           atomic.Pointer[tls.Certificate]
}

// LoadCertificate reads the pair of files: certFile holds the
// certificate, then the intermediates that chain it to a CA clients
// trust; keyFile its private key.
func LoadCertificate(certFile, keyFile string) (*Certificate, error) {
	c := &Certificate{certFile: certFile, keyFile: keyFile}
	cert, err := c.load()
	if err != nil {
		return nil, err
	}
	c.current.Store(cert)
	return c, nil
}

// load reads and checks the pair of files.
func (c *Certificate) load() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s, --tls-key %s: %w; give a PEM certificate (then its intermediates) and the PEM private key that matches it", c.certFile, c.keyFile, err)
	}
	leaf := cert.Leaf // parsed by LoadX509KeyPair since Go 1.23
	if now := time.Now(); now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("--tls-cert %s: the certificate expired on %s; give a current one", c.certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &cert, nil
}

// Reload reads the files again and serves their pair from now on. A pair
// that does not load (a missing or half-written file, a key that does
// not match, an expired certificate) leaves the one served in place, and
// the error says why.
func (c *Certificate) Reload() error {
	cert, err := c.load()
	if err != nil {
		return err
	}
	c.current.Store(cert)
	return nil
}

// LogAttrs is what a log says of the certificate served now: its
// subject, names and expiry.
func (c *Certificate) LogAttrs() []any {
	leaf := c.current.Load().Leaf
	names := slices.Clone(leaf.DNSNames)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	return []any{"subject", leaf.Subject.CommonName, "names", strings.Join(names, ","), "expires", leaf.NotAfter.UTC().Format(time.RFC3339)}
}

// TLSConfig is the configuration of the daemon's listener: TLS 1.2 at
// least, the certificate served now for every handshake.
func (c *Certificate) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.current.Load(), nil
		},
	}
}

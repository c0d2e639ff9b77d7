package server_test

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/server"
	"github.com/routines-dev/routines/internal/tlstest"
)

// serveTLS serves b's server over TLS with cert on 127.0.0.1, within lim,
// and returns its address. active, when not nil, is sent to when a
// connection starts a request.
func serveTLS(t *testing.T, b *testBundle, cert *server.Certificate, lim server.Limits, active chan<- struct{}) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, limited := b.srv.HTTPServer(ln, lim, cert.TLSConfig())
	if track := srv.ConnState; active != nil {
		srv.ConnState = func(c net.Conn, s http.ConnState) {
			track(c, s)
			if s == http.StateActive {
				active <- struct{}{}
			}
		}
	}
	go srv.ServeTLS(limited, "", "")
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// A reload serves the new pair to new connections while a connection
// kept alive goes on with the old one; a pair that does not load leaves
// the one served in place and says why.
func TestCertificateReload(t *testing.T) {
	t.Parallel()
	_, b := setup(t, nil)
	ca := tlstest.NewCA(t, "test CA")
	certFile, keyFile := ca.Files(t, "first")
	cert, err := server.LoadCertificate(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, b, cert, server.DefaultLimits, nil)
	alive := ca.Client()
	if name, _ := tlstest.Served(t, alive, "https://"+addr+"/healthz"); name != "first" {
		t.Fatalf("served %q, want first", name)
	}

	certPEM, keyPEM := ca.Issue(t, "second")
	tlstest.Write(t, certFile, certPEM)
	tlstest.Write(t, keyFile, keyPEM)
	if err := cert.Reload(); err != nil {
		t.Fatal(err)
	}
	if name, reused := tlstest.Served(t, alive, "https://"+addr+"/healthz"); name != "first" || !reused {
		t.Fatalf("the kept-alive connection: served %q (reused %v), want first on the same connection", name, reused)
	}
	if name, reused := tlstest.Served(t, ca.Client(), "https://"+addr+"/healthz"); name != "second" || reused {
		t.Fatalf("a new connection: served %q (reused %v), want second", name, reused)
	}

	// A key that is not the certificate's, then a half-written file.
	_, otherKey := ca.Issue(t, "third")
	thirdPEM, _ := ca.Issue(t, "third")
	tlstest.Write(t, certFile, thirdPEM)
	tlstest.Write(t, keyFile, otherKey)
	if err := cert.Reload(); err == nil || !strings.Contains(err.Error(), "private key does not match public key") {
		t.Fatalf("mismatched pair: %v", err)
	}
	tlstest.Write(t, certFile, thirdPEM[:len(thirdPEM)/2])
	if err := cert.Reload(); err == nil || !strings.Contains(err.Error(), certFile) {
		t.Fatalf("half a certificate: %v", err)
	}
	if name, _ := tlstest.Served(t, ca.Client(), "https://"+addr+"/healthz"); name != "second" {
		t.Fatalf("after failed reloads: served %q, want second", name)
	}
}

func TestLoadCertificateErrors(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t, "test CA")
	certFile, keyFile := ca.Files(t, "x")
	for name, files := range map[string][2]string{
		"no cert":     {filepath.Join(t.TempDir(), "missing.pem"), keyFile},
		"key as cert": {keyFile, keyFile},
	} {
		if _, err := server.LoadCertificate(files[0], files[1]); err == nil || !strings.Contains(err.Error(), "--tls-cert "+files[0]) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := server.LoadCertificate(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
}

// Under TLS the cap on connections still counts a connection that is
// in the middle of a request as busy: a newcomer past the cap gets a 503
// after its handshake, and the busy one is not closed for it.
func TestConnectionCapUnderTLS(t *testing.T) {
	t.Parallel()
	_, b := setup(t, map[string]string{"HOOK_KEY": "k"})
	ca := tlstest.NewCA(t, "test CA")
	cert, err := server.LoadCertificate(ca.Files(t, "cap"))
	if err != nil {
		t.Fatal(err)
	}
	lim := server.DefaultLimits
	lim.MaxConns = 1
	active := make(chan struct{}, 1)
	addr := serveTLS(t, b, cert, lim, active)
	conf := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}

	busy, err := tls.Dial("tcp", addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	// Half a body: the handler waits for the rest.
	if _, err := io.WriteString(busy, "POST /hooks/hooks-here HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n{}"); err != nil {
		t.Fatal(err)
	}
	<-active // the server read the head: the connection is busy

	newcomer, err := tls.Dial("tcp", addr, conf)
	if err != nil {
		t.Fatalf("the newcomer's handshake: %v", err)
	}
	defer newcomer.Close()
	io.WriteString(newcomer, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(newcomer), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("past the cap: %d, want 503 with Retry-After", resp.StatusCode)
	}

	io.WriteString(busy, "{}")
	resp, err = http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatalf("the busy connection was closed: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable {
		t.Fatalf("the busy connection: %d", resp.StatusCode)
	}
}

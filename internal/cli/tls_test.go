//go:build unix

// The certificates are reloaded on SIGHUP, which Windows lacks.

package cli_test

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/cli/clitest"
	"github.com/routines-dev/routines/internal/tlstest"
)

// tlsProject serves a project of one routine over TLS with a
// certificate of ca named first, with remoteToken, and returns the
// daemon, its https URL, the project directory and the certificate's
// files. The certificate names 127.0.0.1, not localhost.
func tlsProject(t *testing.T, ca *tlstest.CA) (d *clitest.Daemon, base, dir, certFile, keyFile string) {
	t.Helper()
	dir = t.TempDir()
	writeFile(t, filepath.Join(dir, "hello", "routine.yaml"), "name: hello\nsteps:\n  - id: hi\n    run: echo hello over tls\n")
	certFile, keyFile = ca.Files(t, "first", "127.0.0.1")
	d = clitest.StartServeWith(t, cli.Deps{Getenv: remoteEnv(t)}, dir, "--token", remoteToken, "--tls-cert", certFile, "--tls-key", keyFile)
	return d, "https://" + d.Addr, dir, certFile, keyFile
}

// serve --tls-cert reads its certificate again on SIGHUP: a connection
// kept alive goes on, new connections get the new certificate, and a
// pair that does not load leaves the old one served and logs why. The
// dashboard's session cookie is Secure.
func TestServeTLSReloadOnSIGHUP(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t, "test CA")
	d, base, _, certFile, keyFile := tlsProject(t, ca)
	alive := ca.Client()
	if name, _ := tlstest.Served(t, alive, base+"/healthz"); name != "first" {
		t.Fatalf("served %q, want first", name)
	}

	certPEM, keyPEM := ca.Issue(t, "second")
	tlstest.Write(t, certFile, certPEM)
	tlstest.Write(t, keyFile, keyPEM)
	hangup(t)
	waitForLines(t, d, "SIGHUP: TLS certificate reloaded", 1)
	if name, reused := tlstest.Served(t, alive, base+"/healthz"); name != "first" || !reused {
		t.Fatalf("the kept-alive connection: served %q (reused %v), want first on the same connection", name, reused)
	}
	if name, reused := tlstest.Served(t, ca.Client(), base+"/healthz"); name != "second" || reused {
		t.Fatalf("a new connection: served %q (reused %v), want second", name, reused)
	}

	_, otherKey := ca.Issue(t, "third")
	tlstest.Write(t, keyFile, otherKey)
	hangup(t)
	waitForLines(t, d, "SIGHUP: TLS certificate not reloaded, still serving the previous one", 1)
	if !strings.Contains(d.Out.String(), "private key does not match public key") {
		t.Fatalf("the log does not say why:\n%s", d.Out.String())
	}
	if name, _ := tlstest.Served(t, ca.Client(), base+"/healthz"); name != "second" {
		t.Fatalf("after a bad pair: served %q, want second", name)
	}

	// The dashboard's login over TLS sets a Secure cookie.
	form := url.Values{"token": {remoteToken}}
	req, err := http.NewRequest(http.MethodPost, base+"/ui/login", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	c := ca.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookies := resp.Cookies()
	if resp.StatusCode != http.StatusSeeOther || len(cookies) != 1 || !cookies[0].Secure || !cookies[0].HttpOnly {
		t.Fatalf("login over TLS: %d, cookies %+v", resp.StatusCode, cookies)
	}
}

// hangup sends SIGHUP to this process, whose serve reloads on it. (The
// daemons of other tests that serve TLS reload too; those without TLS do
// not listen for it.)
func hangup(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// waitForLines waits until the daemon's output holds line n times.
func waitForLines(t *testing.T, d *clitest.Daemon, line string, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); strings.Count(d.Out.String(), line) < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in:\n%s", line, d.Out.String())
		}
	}
}

// The CLI checks a server's certificate: against the system's CAs, so a
// private CA's is refused with what to do; with --ca-cert,
// $ROUTINES_CA_CERT or the CA login kept in the profile, it is trusted.
// On the daemon's own machine, the CLI trusts the certificate the daemon
// recorded.
func TestCLIVerifiesCertificates(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t, "private CA")
	_, base, dir, _, _ := tlsProject(t, ca)
	caFile, wrongCA := ca.CAFile(t), tlstest.NewCA(t, "another CA").CAFile(t)
	remote := []string{"invoke", "hello", "--wait", "--server", base, "--token", remoteToken}

	c := newRemoteCLI(t)
	c.must(2, "is not signed by an authority this machine trusts", remote...)
	c.must(2, "pass the CA's certificate with --ca-cert FILE or $ROUTINES_CA_CERT", append([]string{"--ca-cert", wrongCA}, remote...)...)
	c.must(2, "--ca-cert: CA certificate: open "+filepath.Join(dir, "nope.pem"), append([]string{"--ca-cert", filepath.Join(dir, "nope.pem")}, remote...)...)
	c.must(0, "hello over tls", append([]string{"--ca-cert", caFile}, remote...)...)
	withEnv := &remoteCLI{t: t, dir: c.dir, getenv: func(k string) (string, bool) {
		if k == "ROUTINES_CA_CERT" {
			return caFile, true
		}
		return c.getenv(k)
	}}
	withEnv.must(0, "hello over tls", remote...)

	// A name the certificate does not hold.
	c.must(2, "does not name its host", "--ca-cert", caFile, "invoke", "hello", "--server", strings.Replace(base, "127.0.0.1", "localhost", 1), "--token", remoteToken)

	c.must(2, "is not signed by an authority", "login", base, "--token", remoteToken)
	c.must(0, "logged in to "+base, "--ca-cert", caFile, "login", base, "--token", remoteToken)
	profiles, err := os.ReadFile(c.configPath())
	if err != nil || !strings.Contains(string(profiles), "ca_cert: "+caFile) {
		t.Fatalf("the profile does not keep the CA: %s %v", profiles, err)
	}
	c.must(0, "hello over tls", "--profile", "default", "invoke", "hello", "--wait")
	c.must(2, "is not signed by an authority", "--profile", "default", "--ca-cert", wrongCA, "invoke", "hello")

	// The daemon's own project: no CA needed, the recorded certificate is
	// the one served.
	local := routinesWith(t, cli.Deps{Getenv: secretEnv(t, map[string]string{"ROUTINES_TOKEN": remoteToken, "ROUTINES_CA_CERT": ""})}, dir, "invoke", "hello", "--wait")
	if local.code != 0 || !strings.Contains(local.stdout, "hello over tls") {
		t.Fatalf("invoke on the daemon's machine: %+v", local)
	}
	status := routinesWith(t, cli.Deps{Getenv: secretEnv(t, map[string]string{"ROUTINES_TOKEN": remoteToken, "ROUTINES_CA_CERT": ""})}, dir, "status")
	if status.code != 0 || !strings.Contains(status.stdout, "on "+base) {
		t.Fatalf("status: %+v", status)
	}
	// An emit step of run-once publishes to the daemon the same way.
	emitter := filepath.Join(t.TempDir(), "emitter", "routine.yaml")
	writeFile(t, emitter, "name: emitter\nsteps:\n  - id: e\n    emit: { event: greet.me, token: "+remoteToken+" }\n")
	code, out, errOut := clitest.RunCLIWith(t, cli.Deps{Getenv: secretEnv(t, map[string]string{"ROUTINES_TOKEN": remoteToken, "ROUTINES_CA_CERT": ""})}, "--project", dir, "run-once", emitter)
	if code != 0 {
		t.Fatalf("run-once emitting to the daemon: exit %d\n%s%s", code, out, errOut)
	}
}

// routines server serves TLS from ROUTINES_TLS_CERT and ROUTINES_TLS_KEY
// (as a container gets them) to a CLI with ROUTINES_CA_CERT, and limits
// each token to its --rate-limit-token.
func TestServerTLSAndRateLimit(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t, "deployment CA")
	certFile, keyFile := ca.Files(t, "routines.internal")
	env := map[string]string{"ROUTINES_TLS_CERT": certFile, "ROUTINES_TLS_KEY": keyFile}
	srv := clitest.StartRemoteWith(t, cli.Deps{Getenv: secretEnv(t, env)}, "server",
		append(deploymentArgs(t, "sqlite:"+filepath.Join(t.TempDir(), "deployment.db")), "--addr", "127.0.0.1:0", "--token", remoteToken, "--rate-limit-token", "1/m,burst=3")...)
	if !strings.Contains(srv.Out.String(), "server on https://"+srv.Addr) {
		t.Fatalf("the server does not say it serves https:\n%s", srv.Out.String())
	}
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "greet", "routine.yaml"), "name: greet\nsteps:\n  - id: hi\n    run: echo hi\n")
	cliEnv := secretEnv(t, map[string]string{"ROUTINES_SERVER": "https://" + srv.Addr, "ROUTINES_TOKEN": remoteToken, "ROUTINES_CA_CERT": ca.CAFile(t)})
	run := func(args ...string) result {
		return routinesWith(t, cli.Deps{Getenv: cliEnv}, "", args...)
	}
	// Bodies are bounded as locally: 1 MiB but for a push.
	resp, err := ca.Client().Post("https://"+srv.Addr+"/hooks/any", "application/json", strings.NewReader(strings.Repeat("a", 2<<20)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("a 2 MiB webhook body: %d, want 413", resp.StatusCode)
	}
	for i := range 3 {
		if r := run("revisions", "greet"); r.code == 0 || !strings.Contains(r.stderr, "no routine greet") && !strings.Contains(r.stderr, "404") {
			t.Fatalf("request %d of the burst: %+v", i+1, r)
		}
	}
	if r := run("push", src); r.code == 0 || !strings.Contains(r.stderr, "429 Too Many Requests: too many requests with this token (limit 1/m,burst=3): retry after ") {
		t.Fatalf("past the burst: %+v", r)
	}
}

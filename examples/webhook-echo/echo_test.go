// Package webhookecho is the example of docs/serve.md: a routine fired by a
// signed webhook. Its test starts the daemon, signs a body and posts it,
// the way a sender would.
package webhookecho

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/cli/clitest"
)

func TestSignedWebhook(t *testing.T) {
	t.Setenv("WEBHOOK_SECRET", "example-secret")
	// A copy, so the checkout gets no .routines/ of its own.
	dir := clitest.CopyProject(t, ".")
	addr, _ := clitest.Serve(t, dir)
	if got, state := post(t, addr, "hello from the example"); state != "succeeded" || got != "hello from the example" {
		t.Fatalf("run %s, message output %q", state, got)
	}
}

// Before `routines secrets set WEBHOOK_SECRET`, callers of the webhook,
// signed or not, get 503 naming nothing; the daemon's log says why once,
// and GET /v1/status lists the problem. Once the secret is set, the
// webhook works and the problem is gone, with no restart.
func TestWebhookBeforeSecretsSet(t *testing.T) {
	t.Setenv("ROUTINES_MASTER_KEY", "")
	t.Setenv("ROUTINES_MASTER_KEY_FILE", filepath.Join(t.TempDir(), "master.key"))
	t.Setenv("WEBHOOK_SECRET", "")
	os.Unsetenv("WEBHOOK_SECRET") // restored by the Setenv above
	dir := clitest.CopyProject(t, ".")
	d := clitest.StartServe(t, dir)
	for _, key := range []string{"", "a guess", "", "a guess", ""} {
		code, header, body := send(t, d.Addr, key, "hello")
		if code != http.StatusServiceUnavailable || strings.TrimSpace(body) != `{"error":"this webhook is not available"}` ||
			strings.Contains(fmt.Sprint(header), "WEBHOOK_SECRET") {
			t.Fatalf("before secrets set: %d %v %s", code, header, body)
		}
	}
	if logs := d.Out.String(); strings.Count(logs, "answers 503") != 1 || !strings.Contains(logs, "routines secrets set WEBHOOK_SECRET") {
		t.Fatalf("want the cause logged once:\n%s", logs)
	}
	if problems := status(t, d.Addr); len(problems) != 1 || problems[0].Routine != "webhook-echo" || problems[0].Count != 5 ||
		!strings.Contains(problems[0].Message, "secret WEBHOOK_SECRET is not set") {
		t.Fatalf("problems: %+v", problems)
	}

	code, out, errOut := clitest.RunCLIWith(t, cli.Deps{Stdin: strings.NewReader("example-secret\n")}, "--project", dir, "secrets", "set", "WEBHOOK_SECRET")
	if code != 0 {
		t.Fatalf("secrets set: exit %d %s%s", code, out, errOut)
	}
	t.Setenv("WEBHOOK_SECRET", "example-secret") // for post to sign with
	if got, state := post(t, d.Addr, "hello after secrets set"); state != "succeeded" || got != "hello after secrets set" {
		t.Fatalf("run %s, message output %q", state, got)
	}
	if problems := status(t, d.Addr); len(problems) != 0 {
		t.Fatalf("problems after secrets set: %+v", problems)
	}
}

// status returns the problems GET /v1/status lists.
func status(t *testing.T, addr string) []api.Problem {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st api.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/status: %d %v", resp.StatusCode, err)
	}
	return st.Problems
}

// TestEscapeWebhookInjection sends the bodies that turned the message into
// shell code before {{ }} values reached the shell as environment
// variables: each must come back as the literal message, and the commands
// it carries must not have run (they would create a pwned-* file).
func TestEscapeWebhookInjection(t *testing.T) {
	t.Setenv("WEBHOOK_SECRET", "example-secret")
	dir := clitest.CopyProject(t, ".")
	addr, _ := clitest.Serve(t, dir)
	for _, msg := range []string{
		`"; echo INJECTED $(id); touch pwned-1; "`,
		`$(touch pwned-2)`,
		"`touch pwned-3`",
		`'; touch pwned-4; echo '`,
		`\"; touch pwned-5; #`,
		`${IFS}$(touch${IFS}pwned-6)`,
		"hello\nforged=an output of the sender's choosing",
	} {
		if got, state := post(t, addr, msg); state != "succeeded" || got != msg {
			t.Errorf("the inputs layer (run-line rendering) let the shell parse the message: sent %q, run %s, echoed %q", msg, state, got)
		}
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "pwned-*"))
	if len(matches) > 0 {
		t.Fatalf("the inputs layer (run-line rendering) failed to stop the attack: injected commands ran and created %v", matches)
	}
}

// post delivers a signed webhook with message and returns the state and
// the message output of the run it started.
func post(t *testing.T, addr, message string) (output, state string) {
	t.Helper()
	code, _, body := send(t, addr, os.Getenv("WEBHOOK_SECRET"), message)
	var run struct {
		State string `json:"state"`
		Steps []struct {
			Outputs map[string]string `json:"outputs"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(body), &run); err != nil {
		t.Fatal(err)
	}
	if code != http.StatusOK || len(run.Steps) != 1 {
		t.Fatalf("%d %+v", code, run)
	}
	if _, forged := run.Steps[0].Outputs["forged"]; forged || len(run.Steps[0].Outputs) > 1 {
		t.Errorf("a line break in the message added an output: %v", run.Steps[0].Outputs)
	}
	return run.Steps[0].Outputs["message"], run.State
}

// send posts message to the webhook and waits for the run, signing the
// body with key unless it is "", and returns the answer.
func send(t *testing.T, addr, key, message string) (code int, header http.Header, body string) {
	t.Helper()
	data, err := json.Marshal(map[string]string{"message": message})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/hooks/echo?wait=10s", strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write(data)
		req.Header.Set("X-Routines-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(answer)
}

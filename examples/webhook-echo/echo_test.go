// Package webhookecho is the example of docs/serve.md: a routine fired by a
// signed webhook. Its test starts the daemon, signs a body and posts it,
// the way a sender would.
package webhookecho

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	body, err := json.Marshal(map[string]string{"message": message})
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, []byte(os.Getenv("WEBHOOK_SECRET")))
	mac.Write(body)
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/hooks/echo?wait=10s", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Routines-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var run struct {
		State string `json:"state"`
		Steps []struct {
			Outputs map[string]string `json:"outputs"`
		} `json:"steps"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&run); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || len(run.Steps) != 1 {
		t.Fatalf("%d %+v", resp.StatusCode, run)
	}
	if _, forged := run.Steps[0].Outputs["forged"]; forged || len(run.Steps[0].Outputs) > 1 {
		t.Errorf("a line break in the message added an output: %v", run.Steps[0].Outputs)
	}
	return run.Steps[0].Outputs["message"], run.State
}

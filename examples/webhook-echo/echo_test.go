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
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/cli/clitest"
)

func TestSignedWebhook(t *testing.T) {
	t.Setenv("WEBHOOK_SECRET", "example-secret")
	// A copy, so the checkout gets no .routines/ of its own.
	dir := clitest.CopyProject(t, ".")
	addr, _ := clitest.Serve(t, dir)

	body := `{"message":"hello from the example"}`
	mac := hmac.New(sha256.New, []byte("example-secret"))
	mac.Write([]byte(body))
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/hooks/echo?wait=10s", strings.NewReader(body))
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
	if resp.StatusCode != http.StatusOK || run.State != "succeeded" || len(run.Steps) != 1 || run.Steps[0].Outputs["message"] != "hello from the example" {
		t.Fatalf("%d %+v", resp.StatusCode, run)
	}
}

// Package webhookecho is the example of docs/serve.md: a routine fired by a
// signed webhook. Its test starts the daemon, signs a body and posts it,
// the way a sender would.
package webhookecho

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/steps"
)

// lockedBuffer collects the daemon's output from its goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func TestSignedWebhook(t *testing.T) {
	t.Setenv("WEBHOOK_SECRET", "example-secret")
	// A copy, so the checkout gets no .routines/ of its own.
	dir := filepath.Join(t.TempDir(), "webhook-echo")
	if err := os.CopyFS(dir, os.DirFS(".")); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(dir, ".routines"))

	ctx, cancel := context.WithCancel(context.Background())
	var out lockedBuffer
	done := make(chan int, 1)
	go func() {
		deps := cli.Deps{Kinds: steps.NewRegistry(steps.RunKind{}), Stdout: &out, Stderr: &out}
		done <- cli.Run(ctx, deps, []string{"serve", dir, "--addr", "127.0.0.1:0"})
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exit %d: %s", code, out.b.String())
		}
	}()
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var info struct{ Addr string }
		if data, err := os.ReadFile(filepath.Join(dir, ".routines", "serve.json")); err == nil && json.Unmarshal(data, &info) == nil {
			addr = info.Addr
		}
	}
	if addr == "" {
		t.Fatal("serve did not start")
	}

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

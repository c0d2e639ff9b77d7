package cli_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"filippo.io/age"

	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/secrets"
	"github.com/routines-dev/routines/internal/secrets/vault"
)

// secretEnv is an environment for the commands: a key file of the test's
// own, no master key in the environment, the rest as the process has it.
func secretEnv(t *testing.T, extra map[string]string) func(string) (string, bool) {
	env := map[string]string{
		"ROUTINES_MASTER_KEY":      "",
		"ROUTINES_MASTER_KEY_FILE": filepath.Join(t.TempDir(), "master.key"),
	}
	for k, v := range extra {
		env[k] = v
	}
	return func(k string) (string, bool) {
		if v, ok := env[k]; ok {
			return v, true
		}
		return os.LookupEnv(k)
	}
}

func sha16(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:16]
}

// checkRoutine succeeds when its secret API_KEY is the value whose sha16
// is the input want.
const checkRoutine = `name: check
secrets: [API_KEY]
inputs:
  want: {}
steps:
  - id: compare
    run: test "$(printf %s "$API_KEY" | sha256sum | cut -c1-16)" = "{{ input.want }}"
`

func TestSecretsSetListRotateRemove(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, checkRoutine)
	getenv := secretEnv(t, nil)
	set := func(value string) result {
		return routinesWith(t, cli.Deps{Getenv: getenv, Stdin: strings.NewReader(value)}, dir, "secrets", "set", "API_KEY")
	}
	run := func(want string) int {
		return routinesWith(t, cli.Deps{Getenv: getenv}, dir, "run-once", dir, "--input", "want="+want).code
	}
	const first, second = "first-value-1234", "second-value-5678"
	if r := set(first + "\n"); r.code != 0 || !strings.Contains(r.stdout, "secret API_KEY set (version 1)") {
		t.Fatalf("set: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if code := run(sha16(first)); code != 0 {
		t.Fatalf("run with the first value: exit %d (the trailing newline of stdin must be dropped)", code)
	}
	// Rotation: the next run uses the new value, with no reload.
	if r := set(second); r.code != 0 || !strings.Contains(r.stdout, "(version 2)") {
		t.Fatalf("rotate: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if code := run(sha16(first)); code != 1 {
		t.Fatalf("run expecting the old value: exit %d, want 1", code)
	}
	if code := run(sha16(second)); code != 0 {
		t.Fatalf("run with the rotated value: exit %d", code)
	}
	// list shows names and versions, never values.
	r := routinesWith(t, cli.Deps{Getenv: getenv}, dir, "secrets", "list", "-o", "json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || list[0]["name"] != "API_KEY" || list[0]["version"] != 2.0 {
		t.Fatalf("list: %v %s", err, r.stdout)
	}
	if strings.Contains(r.stdout, "value") {
		t.Errorf("list shows a value: %s", r.stdout)
	}
	// The audit log has the sets and every resolution, with run ids.
	r = routinesWith(t, cli.Deps{Getenv: getenv}, dir, "audit", "--secret", "API_KEY", "--since", "1h", "-o", "json")
	var audit []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &audit); err != nil {
		t.Fatalf("audit: %v %s", err, r.stdout)
	}
	var actions []string
	for _, a := range audit {
		actions = append(actions, a["action"].(string))
		if a["action"] == "resolve" && (a["routine"] != "check" || a["run_id"] == nil || a["provider"] != "builtin" || a["ok"] != true) {
			t.Errorf("audit record %v", a)
		}
	}
	if got := strings.Join(actions, ","); got != "set,resolve,set,resolve,resolve" {
		t.Errorf("audit actions %s", got)
	}
	if strings.Contains(r.stdout, first) || strings.Contains(r.stdout, second) {
		t.Errorf("audit shows a value")
	}
	// rm, then rm again.
	if r := routinesWith(t, cli.Deps{Getenv: getenv}, dir, "secrets", "rm", "API_KEY"); r.code != 0 {
		t.Fatalf("rm: %d %s", r.code, r.stderr)
	}
	if r := routinesWith(t, cli.Deps{Getenv: getenv}, dir, "secrets", "rm", "API_KEY"); r.code != 2 || !strings.Contains(r.stderr, "no secret API_KEY is stored") {
		t.Fatalf("rm of a missing secret: %d %s", r.code, r.stderr)
	}
}

func TestSecretsBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	getenv := secretEnv(t, nil)
	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, []byte(strings.Repeat("x", 64<<10+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args  []string
		stdin string
		want  string
	}{
		{[]string{"secrets", "set", "api_key"}, "v", "upper-case letters"},
		{[]string{"secrets", "set", "API_KEY", "the-value"}, "", "never from the command line"},
		{[]string{"secrets", "set", "API_KEY"}, "\n", "the value is empty"},
		{[]string{"secrets", "set", "API_KEY", "--from-file", big}, "", "at most 65536"},
		{[]string{"secrets", "set", "API_KEY", "--from-file", filepath.Join(dir, "none")}, "", "no such file"},
		{[]string{"secrets"}, "", "secrets needs a command"},
	} {
		r := routinesWith(t, cli.Deps{Getenv: getenv, Stdin: strings.NewReader(c.stdin)}, dir, c.args...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, %q; want exit 2 and %q", c.args, r.code, r.stderr, c.want)
		}
	}
	// Nothing was stored, and no key file was made.
	if _, err := os.Stat(filepath.Join(dir, ".routines", "state.db")); err == nil {
		if r := routinesWith(t, cli.Deps{Getenv: getenv}, dir, "secrets", "list"); !strings.Contains(r.stdout, "no secrets stored") {
			t.Errorf("after refused sets: %s", r.stdout)
		}
	}
	if key, _ := getenv("ROUTINES_MASTER_KEY_FILE"); fileExists(key) {
		t.Errorf("a refused set made the key file %s", key)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// A routine prints its secret every way it can; none of it reaches the
// store (the raw SQLite files are searched), the CLI's output or the run's
// workspace.
func TestSecretsNeverStoredInClear(t *testing.T) {
	t.Parallel()
	const secret = "k3y/with+chars=and-more-0123456789"
	const keyName = "s3cretKeyName_0123456789"   // a value a step uses as an output key
	const quoted = `pa"ss\\w0rd-with-quote-0123` // escaped in JSON
	dir := writeRoutine(t, `name: leaky
secrets: [API_KEY, KEY_NAME, QUOTED]
steps:
  - id: leak
    artifacts: [leak.txt]
    run: |
      echo "plain $API_KEY and {{API_KEY}}"
      printf '%s' "$API_KEY" | base64
      printf 'user:%s' "$API_KEY" | base64 -w0; echo
      printf '%s' "$API_KEY" | sed 's#/#%2F#g; s#+#%2B#g; s#=#%3D#g'; echo
      printf '%s' "${API_KEY:0:9}"; sleep 0.05; printf '%s\n' "${API_KEY:9}"
      echo "key=$API_KEY" >> "$ROUTINES_OUTPUT"
      echo "$KEY_NAME=named after a secret" >> "$ROUTINES_OUTPUT"
      echo "$API_KEY" > leak.txt
      # base64 wrapped at 76 (its default) and 64 (PEM), the value at
      # every alignment and across a line break
      for pad in 40 41 42 50 51 52; do
        printf '%s%s' "$(head -c $pad /dev/zero | tr '\0' x)" "$API_KEY" | base64
        printf '%s%s' "$(head -c $pad /dev/zero | tr '\0' x)" "$API_KEY" | base64 -w 64
      done
      hex=$(printf '%s' "$API_KEY" | od -An -tx1 | tr -d ' \n')
      echo "hex $hex"
      echo "HEX $hex" | tr a-f A-F
      echo "pct $hex" | sed 's/[0-9a-f][0-9a-f]/%&/g'
      echo "PCT $hex" | sed 's/[0-9a-f][0-9a-f]/%&/g' | tr a-f A-F
      echo "Pct $hex" | sed 's/\([0-9a-f]\)\([0-9a-f]\)/%\U\1\E\2/g'
      printf '{"token":"%s"}\n' "$(printf '%s' "$QUOTED" | sed 's/\\/\\\\/g; s/"/\\"/g')"
      printf '{"token":"%s"}\n' "$(printf '%s' "$API_KEY" | sed 's#/#\\/#g')"
  - id: fail
    run: echo "dying with $API_KEY" >&2; exit 3
`)
	getenv := secretEnv(t, nil)
	for name, value := range map[string]string{"API_KEY": secret, "KEY_NAME": keyName, "QUOTED": quoted} {
		if r := routinesWith(t, cli.Deps{Getenv: getenv, Stdin: strings.NewReader(value)}, dir, "secrets", "set", name); r.code != 0 {
			t.Fatalf("set %s: %s", name, r.stderr)
		}
	}
	r := routinesWith(t, cli.Deps{Getenv: getenv}, dir, "run-once", dir, "-o", "json")
	if r.code != 1 {
		t.Fatalf("run-once: exit %d, want 1: %s", r.code, r.stderr)
	}
	var detail struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &detail); err != nil {
		t.Fatal(err)
	}
	shown := r.stdout + r.stderr
	for _, args := range [][]string{{"show", detail.ID, "-o", "json"}, {"logs", detail.ID}, {"runs", "-o", "json"}} {
		res := routinesWith(t, cli.Deps{Getenv: getenv}, dir, args...)
		shown += res.stdout + res.stderr
	}
	if !strings.Contains(shown, "***") {
		t.Fatalf("no redaction seen in the output: %s", shown)
	}
	if !strings.Contains(shown, "named after a secret") {
		t.Fatalf("the output named after a secret is missing: %s", shown)
	}
	forms := []string{
		secret, secret[9:], keyName, quoted,
		strings.ReplaceAll(strings.ReplaceAll(quoted, `\`, `\\`), `"`, `\"`),
		strings.ReplaceAll(secret, "/", `\/`),
		base64.StdEncoding.EncodeToString([]byte(secret)),
		base64.StdEncoding.EncodeToString([]byte("user:" + secret))[8:40],
		url.QueryEscape(secret),
	}
	// Every 8 characters of the value's hex, percent and base64 forms, the
	// latter at each alignment: pieces a wrapped line holds.
	h := hex.EncodeToString([]byte(secret))
	var pct, pctUpper, pctMixed strings.Builder
	for i := 0; i < len(h); i += 2 {
		pct.WriteString("%" + h[i:i+2])
		pctUpper.WriteString("%" + strings.ToUpper(h[i:i+2]))
		pctMixed.WriteString("%" + strings.ToUpper(h[i:i+1]) + h[i+1:i+2])
	}
	encoded := []string{h, strings.ToUpper(h), pct.String(), pctUpper.String(), pctMixed.String()}
	for k := range 3 {
		e := base64.StdEncoding.EncodeToString(append(make([]byte, k), secret...))
		encoded = append(encoded, e[(8*k+5)/6:8*(k+len(secret))/6])
	}
	for _, e := range encoded {
		for i := 0; i+8 <= len(e); i++ {
			forms = append(forms, e[i:i+8])
		}
	}
	for _, f := range forms {
		if strings.Contains(shown, f) {
			t.Errorf("the CLI showed %q", f)
		}
	}
	// Every file the project's store and runs left, raw: the database, its
	// WAL and shared memory, the workspace. The artifact is the step's own
	// file and holds the value by design; it is checked to exist instead.
	n := 0
	err := filepath.WalkDir(filepath.Join(dir, ".routines"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if d.Name() == "leak.txt" {
			return nil
		}
		n++
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, f := range forms {
			if strings.Contains(string(b), f) {
				t.Errorf("%s holds %q", p, f)
			}
		}
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("walk: %v, %d files", err, n)
	}
}

// A value stored under another master key fails the run before any step,
// naming the secret and the key's source, never a value.
func TestSecretsWrongMasterKey(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, "name: k\nsecrets: [API_KEY]\nsteps:\n  - id: a\n    run: touch ran\n")
	getenv := secretEnv(t, nil)
	if r := routinesWith(t, cli.Deps{Getenv: getenv, Stdin: strings.NewReader("value-1234")}, dir, "secrets", "set", "API_KEY"); r.code != 0 {
		t.Fatalf("set: %s", r.stderr)
	}
	other, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	r := routinesWith(t, cli.Deps{Getenv: secretEnv(t, map[string]string{"ROUTINES_MASTER_KEY": other.String()})}, dir, "run-once", dir, "-o", "json")
	var detail struct {
		State string `json:"state"`
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &detail); err != nil {
		t.Fatalf("%v: %s %s", err, r.stdout, r.stderr)
	}
	if r.code != 1 || detail.State != "failed" || detail.Error.Code != "secret_missing" ||
		!strings.Contains(detail.Error.Message, "secret API_KEY") || !strings.Contains(detail.Error.Message, "sealed under another master key than ROUTINES_MASTER_KEY") {
		t.Errorf("exit %d, %+v", r.code, detail)
	}
	if fileExists(filepath.Join(dir, "ran")) {
		t.Errorf("a step ran")
	}
}

// A secret from Vault, through the provider main registers, pointed at an
// in-process server that answers Vault's KV v2 read: resolved at every
// run, so a value rotated in Vault is used by the next run; audited with
// its provider; and a malformed reference is refused before anything runs.
func TestSecretsFromVault(t *testing.T) {
	t.Parallel()
	const token = "s.test-token"
	var (
		mu    sync.Mutex
		value = "xoxb-first-0001"
	)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/v1/kv/data/slack" || r.Header.Get("X-Vault-Token") != token {
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"errors":["permission denied"]}`)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, `{"data":{"data":{"bot_token":%q},"metadata":{"version":1}}}`, value)
	}))
	t.Cleanup(ts.Close)
	deps := cli.Deps{
		Getenv: secretEnv(t, map[string]string{"VAULT_ADDR": ts.URL, "VAULT_TOKEN": token}),
		SecretProviders: func(getenv func(string) string) ([]secrets.Provider, error) {
			p, err := vault.New(vault.ConfigFromEnv(getenv))
			return []secrets.Provider{p}, err
		},
	}
	dir := writeRoutine(t, `name: slack
secrets: [{name: SLACK_BOT_TOKEN, from: "vault:kv/data/slack#bot_token"}]
inputs:
  want: {}
steps:
  - id: compare
    run: test "$(printf %s "$SLACK_BOT_TOKEN" | sha256sum | cut -c1-16)" = "{{ input.want }}"
`)
	run := func(want string) result {
		return routinesWith(t, deps, dir, "run-once", dir, "--input", "want="+want)
	}
	if r := run(sha16("xoxb-first-0001")); r.code != 0 {
		t.Fatalf("first run: %d %s", r.code, r.stderr)
	}
	mu.Lock()
	value = "xoxb-rotated-0002"
	mu.Unlock()
	if r := run(sha16("xoxb-rotated-0002")); r.code != 0 {
		t.Fatalf("run after the rotation in Vault: %d %s", r.code, r.stderr)
	}
	r := routinesWith(t, deps, dir, "audit", "-o", "json")
	if !strings.Contains(r.stdout, `"provider": "vault"`) || strings.Contains(r.stdout, "xoxb") {
		t.Errorf("audit: %s", r.stdout)
	}
	bad := writeRoutine(t, "name: bad\nsecrets: [{name: T, from: \"vault:kv/slack\"}]\nsteps:\n  - id: a\n    run: touch ran\n")
	r = routinesWith(t, deps, bad, "run-once", bad)
	if r.code != 2 || !strings.Contains(r.stderr, "secret T: from:") || !strings.Contains(r.stderr, "kv/data/slack#bot_token") {
		t.Errorf("malformed reference: exit %d %s", r.code, r.stderr)
	}
	if fileExists(filepath.Join(bad, "ran")) {
		t.Errorf("a step ran")
	}
}

// Package secretgreeting is the example of docs/secrets.md: a builtin
// secret set, used, rotated and audited, as its README shows.
package secretgreeting

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/cli/clitest"
)

func signature(token, who string) string {
	sum := sha256.Sum256([]byte(token + "Hello, " + who + "!"))
	return hex.EncodeToString(sum[:])[:16]
}

func TestSecretGreeting(t *testing.T) {
	dir := clitest.CopyProject(t, ".")
	env := map[string]string{
		"ROUTINES_MASTER_KEY":      "",
		"ROUTINES_MASTER_KEY_FILE": filepath.Join(t.TempDir(), "master.key"),
	}
	deps := func(stdin string) cli.Deps {
		return cli.Deps{
			Stdin: strings.NewReader(stdin),
			Getenv: func(k string) (string, bool) {
				if v, ok := env[k]; ok {
					return v, true
				}
				return os.LookupEnv(k)
			},
		}
	}
	run := func(args ...string) (int, string, string) {
		return clitest.RunCLIWith(t, deps(""), append([]string{"--project", dir}, args...)...)
	}

	// Without a value, the run fails before any step, naming the secret.
	if code, out, _ := run("run-once", dir); code != 1 || !strings.Contains(out, "secret GREETING_TOKEN is not set") {
		t.Fatalf("run without the secret: exit %d\n%s", code, out)
	}
	for i, token := range []string{"first-token-1111", "rotated-token-2222"} {
		if code, out, errOut := clitest.RunCLIWith(t, deps(token+"\n"), "--project", dir, "secrets", "set", "GREETING_TOKEN"); code != 0 {
			t.Fatalf("secrets set: exit %d %s%s", code, out, errOut)
		}
		code, out, errOut := run("run-once", dir, "--input", "who=ada")
		if code != 0 {
			t.Fatalf("run %d: exit %d\n%s%s", i+1, code, out, errOut)
		}
		for _, want := range []string{"[sign] debug: token is ***", "[report] greeting for ada signed " + signature(token, "ada")} {
			if !strings.Contains(out, want) {
				t.Errorf("run %d lacks %q:\n%s", i+1, want, out)
			}
		}
		if strings.Contains(out, token) {
			t.Errorf("run %d printed the token:\n%s", i+1, out)
		}
	}
	code, out, _ := run("audit")
	if code != 0 || strings.Count(out, "resolve  GREETING_TOKEN") != 3 || strings.Count(out, "set      GREETING_TOKEN") != 2 {
		t.Errorf("audit: exit %d\n%s", code, out)
	}
	db, err := os.ReadFile(filepath.Join(dir, ".routines", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(db), "first-token") || strings.Contains(string(db), "rotated-token") {
		t.Errorf("the store file holds a token in clear text")
	}
}

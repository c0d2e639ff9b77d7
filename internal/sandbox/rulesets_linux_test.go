package sandbox

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// keptFor returns the ruleset kept for p, or nil.
func keptFor(p *Policy) *keptRuleset {
	key := rulesetKey(p)
	rulesets.Lock()
	defer rulesets.Unlock()
	for _, r := range rulesets.kept {
		if r.key == key {
			return r
		}
	}
	return nil
}

// TestRulesetFollowsReplacedPaths: a ruleset serves the steps of a policy
// while its paths name the same files; a directory removed and made again,
// or a link pointed elsewhere, gets a new one.
func TestRulesetFollowsReplacedPaths(t *testing.T) {
	t.Parallel()
	b := setup(t)
	other := t.TempDir()
	rw := filepath.Join(other, "rw")
	ro := filepath.Join(other, "ro")
	for _, dir := range []string{rw, ro, ro + "2"} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte(filepath.Base(dir)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(other, "link")
	if err := os.Symlink(ro, link); err != nil {
		t.Fatal(err)
	}
	p := b.policy()
	p.ReadWrite = append(p.ReadWrite, rw)
	p.ReadOnly = []string{link}
	step := func(want string) {
		t.Helper()
		b.stdout.Reset()
		res := b.bash(t, t.Context(), p, "echo x > "+rw+"/g && cat "+link+"/f")
		b.requireExit(t, res, 0)
		if b.stdout.String() != want {
			t.Fatalf("read %q through the link, want %q", b.stdout.String(), want)
		}
	}

	step("ro")
	first := keptFor(&p)
	step("ro")
	if first == nil || keptFor(&p) != first {
		t.Fatal("the second step of a policy did not reuse its ruleset")
	}

	if err := os.RemoveAll(rw); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(rw, 0o755); err != nil {
		t.Fatal(err)
	}
	step("ro")
	if keptFor(&p) == first {
		t.Fatal("a replaced directory kept its ruleset")
	}

	second := keptFor(&p)
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(ro+"2", link); err != nil {
		t.Fatal(err)
	}
	step("ro2")
	if keptFor(&p) == second {
		t.Fatal("a link pointed elsewhere kept its ruleset")
	}
}

// TestKeptRulesetsBounded: the cache keeps a few rulesets, and drops those
// no step used for a while.
func TestKeptRulesetsBounded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var policies []Policy
	for range maxKeptRulesets + 3 {
		p := Policy{ReadWrite: []string{t.TempDir()}}
		policies = append(policies, p)
		if _, err := Run(t.Context(), &Command{Path: "/bin/true", Policy: p}); err != nil {
			t.Fatal(err)
		}
	}
	rulesets.Lock()
	n := len(rulesets.kept)
	rulesets.Unlock()
	if n > maxKeptRulesets {
		t.Fatalf("%d rulesets kept", n)
	}
	if keptFor(&policies[0]) != nil {
		t.Fatal("the least recently used ruleset was kept")
	}

	p := b.policy()
	if _, err := Run(t.Context(), &Command{Path: "/bin/true", Policy: p}); err != nil {
		t.Fatal(err)
	}
	r := keptFor(&p)
	if r == nil {
		t.Fatal("no ruleset kept")
	}
	rulesets.Lock()
	r.lastUsed = time.Now().Add(-rulesetIdle)
	rulesets.Unlock()
	dropIdleRulesets()
	if keptFor(&p) != nil || !r.dropped {
		t.Fatal("an idle ruleset was kept")
	}
	if _, err := Run(t.Context(), &Command{Path: "/bin/true", Policy: p}); err != nil {
		t.Fatal(err)
	}
}

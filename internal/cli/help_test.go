package cli

import (
	"bytes"
	"context"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// Every command's help has examples and its exit codes, and the root's
// promises only what the binary does.
func TestEveryCommandHasExamplesAndExitCodes(t *testing.T) {
	t.Parallel()
	root := newRoot(&globals{})
	n := 0
	walk(root, func(c *cobra.Command) {
		if c.Hidden || !c.Runnable() && !c.HasAvailableSubCommands() {
			return // a help topic (routines help projects) is read, not run
		}
		n++
		var out bytes.Buffer
		c.SetOut(&out)
		if err := c.Help(); err != nil {
			t.Fatal(err)
		}
		help := out.String()
		if c.Example == "" || !strings.Contains(help, "\nExamples:\n  ") {
			t.Errorf("%s: no Examples in its help (add it to helpTable):\n%s", c.CommandPath(), help)
		}
		if !regexp.MustCompile(`\nExit codes:\n  [0-9]`).MatchString(help) {
			t.Errorf("%s: no exit codes in its help (add them to helpTable):\n%s", c.CommandPath(), help)
		}
		if regexp.MustCompile(`(?i)exit codes|exits? [0-9]`).MatchString(c.Long) {
			t.Errorf("%s: its exit codes are told in its Long too (keep them in helpTable):\n%s", c.CommandPath(), c.Long)
		}
		if strings.Contains(help, "Docs: docs/") {
			t.Errorf("%s: a docs/ path means nothing to an installed binary: link %s", c.CommandPath(), docsURL)
		}
	})
	if n < 25 {
		t.Fatalf("walked %d commands", n)
	}
	for path := range helpTable {
		if c, _, err := root.Find(strings.Fields(path)[1:]); err != nil || c.CommandPath() != path {
			t.Errorf("helpTable has %q, which is no command", path)
		}
	}
	if strings.Contains(root.Long, "PostgreSQL") || !strings.Contains(root.Long, docsURL) || !strings.Contains(root.Long, "routines help") {
		t.Errorf("root help:\n%s", root.Long)
	}
}

func TestVersionString(t *testing.T) {
	t.Parallel()
	platform := " " + runtime.GOOS + "/" + runtime.GOARCH
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261204135801-9657343abcde+dirty"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "9657343abcdef0123456789"},
		{Key: "vcs.time", Value: "2026-12-04T13:58:01Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	for _, tc := range []struct {
		set  string
		bi   *debug.BuildInfo
		want string
	}{
		{"", bi, "v0.0.0-20261204135801-9657343abcde+dirty (rev 9657343, 2026-12-04, modified) go1.26.8" + platform},
		{"v1.2.0", bi, "v1.2.0 (rev 9657343, 2026-12-04, modified) go1.26.8" + platform},
		{"", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"}}, "v1.2.0 go1.26.8" + platform},
		{"", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, "devel go1.26.8" + platform},
		{"", nil, "devel " + runtime.Version() + platform},
	} {
		if got := versionString(tc.set, tc.bi); got != tc.want {
			t.Errorf("versionString(%q, …) = %q, want %q", tc.set, got, tc.want)
		}
	}
	var out bytes.Buffer
	if code := Run(context.Background(), Deps{Stdout: &out, Stderr: &out, Build: bi}, []string{"--version"}); code != 0 ||
		out.String() != "routines v0.0.0-20261204135801-9657343abcde+dirty (rev 9657343, 2026-12-04, modified) go1.26.8"+platform+"\n" {
		t.Fatalf("--version: %d %q", code, out.String())
	}
}

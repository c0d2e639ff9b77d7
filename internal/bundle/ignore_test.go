package bundle

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestWildmatch(t *testing.T) {
	t.Parallel()
	cases := []struct {
		pattern, text string
		want          bool
	}{
		{"foo", "foo", true},
		{"foo", "bar", false},
		{"???", "foo", true},
		{"??", "foo", false},
		{"*", "foo", true},
		{"f*", "foo", true},
		{"*f", "foo", false},
		{"*ob*a*r*", "foobar", true},
		{"*ab", "aaaaaaabababab", true},
		{`foo\*`, "foo*", true},
		{`foo\*bar`, "foobar", false},
		{`f\\oo`, `f\oo`, true},
		{`\#x`, "#x", true},
		{"a?c", "a/c", false},
		{"*.txt", "dir/a.txt", false},
		{"foo/*", "foo/bar", true},
		{"foo/*", "foo/bar/baz", false},
		{"foo/**", "foo/bar/baz", true},
		{"foo/**", "foo", false},
		{"**/bar", "bar", true},
		{"**/bar", "foo/x/bar", true},
		{"foo/**/bar", "foo/bar", true},
		{"foo/**/bar", "foo/a/b/bar", true},
		{"foo/**/bar", "foo/a/b/baz", false},
		{"a**b", "axxb", true},
		{"a**b", "ax/xb", false},
		{"**", "a/b/c", true},
		{"[!a]b", "ab", false},
		{"[!a]b", "cb", true},
		{"[^a]b", "cb", true},
		{"[a-c]x", "bx", true},
		{"[a-c]x", "dx", false},
		{"[]]", "]", true},
		{"[]-a]", "_", true},
		{"[[:digit:]]*", "1abc", true},
		{"[[:digit:]]*", "abc", false},
		{"[[:alpha:][:digit:]]", "7", true},
		{"[[:nope:]]", "n", false},
		{"[[:alpha:]", "[", false},
		{"a[/]b", "a/b", false},
		{"a[!x]b", "a/b", false},
		{"[", "[", false},
		{`[\]]`, "]", true},
		{"*/b", "a/b", true},
		{"*/b", "a/c/b", false},
	}
	for _, c := range cases {
		if got := wildmatch(c.pattern, c.text); got != c.want {
			t.Errorf("wildmatch(%q, %q) = %v, want %v", c.pattern, c.text, got, c.want)
		}
	}
}

func TestParsePatterns(t *testing.T) {
	t.Parallel()
	got := parsePatterns([]byte("\xef\xbb\xbf# comment\n\n*.log  \nkeep\\ \r\n!/build/\n\\!bang\ndoc/*.txt\n/\n!\n"))
	want := []pattern{
		{glob: "*.log", basename: true},
		{glob: `keep\ `, basename: true},
		{glob: "build", negate: true, dirOnly: true},
		{glob: `\!bang`, basename: true},
		{glob: "doc/*.txt"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("parsePatterns:\n got %+v\nwant %+v", got, want)
	}
}

// What Create keeps of a git checkout is what git finds untracked and not
// ignored, for many random trees and ignore files (git is the reference;
// the go-git and sabhiram matchers each got cases here wrong).
func TestIgnoreMatchesGit(t *testing.T) {
	t.Parallel()
	gitBin, err := exec.LookPath("git")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("git is not installed, and CI must compare with it")
		}
		t.Skip("no git to compare with")
	}
	rng := rand.New(rand.NewPCG(12, 34))
	elems := []string{"a", "b", "ab", "a.txt", "b.log", "x.y", "[x]", "#c", "!d", "dir"}
	globs := []string{"a", "b", "*", "**", "?", "a*", "*.txt", "*.log", "[ab]", "[!a]b", "[a-c]*", `\#c`, `\!d`, "x.?", "dir", `\[x\]`}
	randPath := func(depth int) string {
		var parts []string
		for range 1 + rng.IntN(depth) {
			parts = append(parts, elems[rng.IntN(len(elems))])
		}
		return strings.Join(parts, "/")
	}
	randPattern := func() string {
		var parts []string
		for range 1 + rng.IntN(3) {
			parts = append(parts, globs[rng.IntN(len(globs))])
		}
		p := strings.Join(parts, "/")
		switch rng.IntN(6) {
		case 0:
			p = "/" + p
		case 1:
			p += "/"
		case 2:
			p = "**/" + p
		}
		if rng.IntN(4) == 0 {
			p = "!" + p
		}
		return p
	}
	home := t.TempDir()
	gitDir := filepath.Join(t.TempDir(), "git")
	git := exec.Command(gitBin, "init", "-q", "--bare", gitDir)
	git.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home, "GIT_CONFIG_NOSYSTEM=1")
	if out, err := git.CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	for i := range 25 {
		dir := t.TempDir()
		files := map[string]string{}
		for range 50 {
			files[randPath(4)] = "x"
		}
		// A file cannot also be a directory: keep the deepest.
		for name := range files {
			for d := filepath.Dir(name); d != "."; d = filepath.Dir(d) {
				delete(files, d)
			}
		}
		for _, at := range []string{".", "a", "b/ab", "dir", "a/dir/x.y"} {
			var lines []string
			for range 1 + rng.IntN(5) {
				lines = append(lines, randPattern())
			}
			underFile := false
			for d := at; d != "."; d = filepath.Dir(d) {
				_, isFile := files[d]
				underFile = underFile || isFile
			}
			if !underFile {
				files[filepath.Join(at, ".gitignore")] = strings.Join(lines, "\n") + "\n"
			}
		}
		writeFiles(t, dir, files)
		git := exec.Command(gitBin, "--git-dir", gitDir, "--work-tree", dir, "ls-files", "-z", "--others", "--exclude-standard")
		git.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home, "GIT_CONFIG_NOSYSTEM=1")
		out, err := git.Output()
		if err != nil {
			t.Fatalf("git ls-files: %v", err)
		}
		var want []string
		for name := range bytes.SplitSeq(bytes.TrimSuffix(out, []byte{0}), []byte{0}) {
			if len(name) > 0 {
				want = append(want, string(name))
			}
		}
		slices.Sort(want)
		b, err := Create(dir, CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := names(b.Manifest); !slices.Equal(got, want) {
			var ignores []string
			for name, body := range files {
				if filepath.Base(name) == ".gitignore" {
					ignores = append(ignores, name+":\n"+body)
				}
			}
			slices.Sort(ignores)
			t.Fatalf("tree %d: Create keeps\n%q\ngit keeps\n%q\nignore files:\n%s", i, got, want, strings.Join(ignores, ""))
		}
	}
}

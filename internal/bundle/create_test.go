package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	writeFiles(t, src, map[string]string{
		"routine.yaml":                     "name: hello\n",
		"scripts/run.sh":                   "#!/bin/sh\necho hi\n",
		"data/deep/a.json":                 `{"a":1}`,
		"data/empty.txt":                   "",
		"ünïcode name.txt":                 "ok",
		strings.Repeat("long-", 30) + "/x": "a name past the 100 bytes of a ustar header",
	})
	if err := os.Chmod(filepath.Join(src, "scripts/run.sh"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(src, "nothing"), 0o755); err != nil {
		t.Fatal(err)
	}
	symlink(t, "scripts", filepath.Join(src, "current"))
	symlink(t, "run.sh", filepath.Join(src, "scripts/latest"))
	symlink(t, "../../routine.yaml", filepath.Join(src, "data/deep/routine"))

	b, err := Create(src, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(b.Data); hex.EncodeToString(sum[:]) != b.Hash {
		t.Errorf("Hash %s is not the sha256 of Data", b.Hash)
	}
	if b.ID() != b.Hash[:ShortLen] || len(b.ID()) != 12 {
		t.Errorf("ID %q, want the first 12 digits of %s", b.ID(), b.Hash)
	}
	dest := filepath.Join(tempDir(t), "rev")
	if err := Extract(bytes.NewReader(b.Data), dest, Limits{}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"routine.yaml":                     "name: hello\n",
		"scripts":                          "dir",
		"scripts/run.sh":                   "exec:#!/bin/sh\necho hi\n",
		"scripts/latest":                   "-> run.sh",
		"data":                             "dir",
		"data/deep":                        "dir",
		"data/deep/a.json":                 `{"a":1}`,
		"data/deep/routine":                "-> ../../routine.yaml",
		"data/empty.txt":                   "",
		"ünïcode name.txt":                 "ok",
		strings.Repeat("long-", 30):        "dir",
		strings.Repeat("long-", 30) + "/x": "a name past the 100 bytes of a ustar header",
		"current":                          "-> scripts",
	}
	if got := readTree(t, dest); !maps.Equal(got, want) {
		t.Errorf("extracted tree:\n got %q\nwant %q", got, want)
	}
	// Read-only: the steps of a run cannot change the revision.
	for name, mode := range map[string]os.FileMode{".": 0o555, "routine.yaml": 0o444, "scripts/run.sh": 0o555, "data/deep": 0o555} {
		info, err := os.Lstat(filepath.Join(dest, name))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", name, info.Mode().Perm(), mode)
		}
	}
	wantNames := []string{"current", "data/deep/a.json", "data/deep/routine", "data/empty.txt", strings.Repeat("long-", 30) + "/x", "routine.yaml", "scripts/latest", "scripts/run.sh", "ünïcode name.txt"}
	if got := names(b.Manifest); !slices.Equal(got, wantNames) {
		t.Errorf("manifest:\n got %q\nwant %q", got, wantNames)
	}
	sum := sha256.Sum256([]byte("name: hello\n"))
	for _, f := range b.Manifest.Files {
		switch f.Path {
		case "routine.yaml":
			if f.SHA256 != hex.EncodeToString(sum[:]) || f.Size != 12 || f.Exec {
				t.Errorf("manifest entry %+v, want size 12, sha256 %x, not exec", f, sum)
			}
		case "scripts/run.sh":
			if !f.Exec {
				t.Errorf("manifest entry %+v is not exec", f)
			}
		case "current":
			if f.Link != "scripts" {
				t.Errorf("manifest entry %+v, want a link to scripts", f)
			}
		}
	}
	if m, err := Inspect(bytes.NewReader(b.Data), Limits{}); err != nil || !slices.Equal(names(m), wantNames) {
		t.Errorf("Inspect: %v, %q", err, names(m))
	}
}

// Two directories with the same files bundle to the same bytes, whatever
// the order the files were written in, their times, owners and modes
// beyond "executable", and the directories that hold nothing bundled.
func TestCreateDeterministic(t *testing.T) {
	t.Parallel()
	files := map[string]string{
		"routine.yaml":  "name: same\n",
		"a/b/c.txt":     "c",
		"a/x.txt":       "x",
		"bin/tool":      "#!/bin/sh\n",
		"z.txt":         "z",
		".gitignore":    "*.log\n",
		"sub/dir/y.txt": "y",
	}
	keys := slices.Sorted(maps.Keys(files))
	one, two := t.TempDir(), t.TempDir()
	for _, name := range keys {
		writeFiles(t, one, map[string]string{name: files[name]})
	}
	os.Chmod(filepath.Join(one, "bin/tool"), 0o755)
	for _, name := range slices.Backward(keys) {
		writeFiles(t, two, map[string]string{name: files[name]})
		os.Chmod(filepath.Join(two, name), 0o600)
		old := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)
		os.Chtimes(filepath.Join(two, name), old, old)
		os.Lchown(filepath.Join(two, name), 4321, 4321) // only root may; the zeroing is shown when it does
	}
	os.Chmod(filepath.Join(two, "bin/tool"), 0o700)
	os.Chmod(filepath.Join(two, "a"), 0o700)
	writeFiles(t, two, map[string]string{"debug.log": "ignored", "logs/today.log": "ignored too"})
	os.Mkdir(filepath.Join(two, "empty"), 0o755)

	b1, err := Create(one, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b2, err := Create(two, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b1.Hash != b2.Hash || !bytes.Equal(b1.Data, b2.Data) {
		t.Fatalf("the same files bundle to %s and %s", b1.ID(), b2.ID())
	}
	again, err := Create(one, CreateOptions{})
	if err != nil || again.Hash != b1.Hash {
		t.Fatalf("bundling again: %v, hash %s, want %s", err, again.Hash, b1.Hash)
	}
	// Content does matter, and so does the execute bit.
	writeFiles(t, two, map[string]string{"a/x.txt": "X"})
	if b, err := Create(two, CreateOptions{}); err != nil || b.Hash == b1.Hash {
		t.Errorf("changed content: %v, same hash %s", err, b1.ID())
	}
	writeFiles(t, two, map[string]string{"a/x.txt": "x"})
	os.Chmod(filepath.Join(two, "bin/tool"), 0o644)
	if b, err := Create(two, CreateOptions{}); err != nil || b.Hash == b1.Hash {
		t.Errorf("a file no longer executable: %v, same hash %s", err, b1.ID())
	}
}

func TestCreateIgnores(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	writeFiles(t, src, map[string]string{
		".gitignore":             "*.log\n!keep.log\nbuild/\n/secret.txt\ntmp/\n# a comment\n\\#literal\n",
		".routinesignore":        "!build/\nbuild/cache/\nnotes.md\n",
		"routine.yaml":           "name: x\n",
		"a.log":                  "ignored",
		"keep.log":               "put back",
		"secret.txt":             "anchored: ignored here",
		"sub/secret.txt":         "anchored pattern: not ignored below",
		"#literal":               "escaped hash: ignored",
		"notes.md":               "ignored by .routinesignore",
		"build/out.bin":          "gitignored dir put back by .routinesignore",
		"build/cache/x":          "ignored by .routinesignore",
		"tmp":                    "a file named like a dir-only pattern: kept",
		"sub/tmp/x":              "a dir matching the dir-only pattern: ignored",
		"sub/.gitignore":         "*.tmp\n!important.log\n",
		"sub/x.tmp":              "ignored by the nested file",
		"x.tmp":                  "the nested file does not apply above it",
		"sub/important.log":      "put back by the nested file",
		"sub/other.log":          "ignored by the root's",
		".routines/state.db":     "never",
		".git/HEAD":              "never",
		"vendor/lib/.git":        "never (a submodule's .git file)",
		"nested/.routines/vault": "never",
		"nested/ok.txt":          "kept",
	})
	b, err := Create(src, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{".gitignore", ".routinesignore", "build/out.bin", "keep.log", "nested/ok.txt", "routine.yaml", "sub/.gitignore", "sub/important.log", "sub/secret.txt", "tmp", "x.tmp"}
	if got := names(b.Manifest); !slices.Equal(got, want) {
		t.Errorf("bundled:\n got %q\nwant %q", got, want)
	}
}

// In a git checkout, the .gitignore files above the routine directory
// apply as git applies them; outside one, they do not.
func TestCreateIgnoresAboveInCheckout(t *testing.T) {
	t.Parallel()
	for _, checkout := range []bool{true, false} {
		top := t.TempDir()
		writeFiles(t, top, map[string]string{
			".gitignore":                   "*.secret\n/routines/hello/local.txt\n",
			"routines/.gitignore":          "!keep.secret\n",
			"routines/hello/routine.yaml":  "name: hello\n",
			"routines/hello/a.secret":      "ignored from above",
			"routines/hello/keep.secret":   "put back by the nearer file",
			"routines/hello/local.txt":     "anchored above",
			"routines/hello/sub/local.txt": "kept",
		})
		want := []string{"keep.secret", "routine.yaml", "sub/local.txt"}
		if checkout {
			if err := os.Mkdir(filepath.Join(top, ".git"), 0o755); err != nil {
				t.Fatal(err)
			}
		} else {
			want = []string{"a.secret", "keep.secret", "local.txt", "routine.yaml", "sub/local.txt"}
		}
		b, err := Create(filepath.Join(top, "routines/hello"), CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := names(b.Manifest); !slices.Equal(got, want) {
			t.Errorf("checkout %v:\n got %q\nwant %q", checkout, got, want)
		}
	}
}

func TestCreateRefuses(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		make   func(t *testing.T, dir string)
		limits Limits
		want   []string
	}{
		{"absolute link", func(t *testing.T, dir string) {
			symlink(t, "/etc/passwd", filepath.Join(dir, "passwd"))
		}, Limits{}, []string{"passwd: ", "absolute path", "relative links"}},
		{"link out", func(t *testing.T, dir string) {
			symlink(t, "../../outside", filepath.Join(dir, "sub/up"))
		}, Limits{}, []string{"sub/up: ", "outside the directory"}},
		{"link out through a link", func(t *testing.T, dir string) {
			symlink(t, "..", filepath.Join(dir, "sub/top"))
			symlink(t, "sub/top/..", filepath.Join(dir, "escape"))
		}, Limits{}, []string{"escape: ", "leads outside the directory"}},
		{"dangling link", func(t *testing.T, dir string) {
			symlink(t, "missing.txt", filepath.Join(dir, "l"))
		}, Limits{}, []string{"l: ", "not in the bundle"}},
		{"link to an ignored file", func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{".routinesignore": "big.bin\n", "big.bin": "x"})
			symlink(t, "big.bin", filepath.Join(dir, "model"))
		}, Limits{}, []string{"model: ", "not in the bundle (missing, or ignored)"}},
		{"link loop", func(t *testing.T, dir string) {
			symlink(t, "b", filepath.Join(dir, "a"))
			symlink(t, "a", filepath.Join(dir, "b"))
		}, Limits{}, []string{"a: ", "loops"}},
		{"too many files", func(t *testing.T, dir string) {
			for i := range 10 {
				writeFiles(t, dir, map[string]string{filepath.Join("node_modules", string(rune('a'+i))): "x"})
			}
		}, Limits{MaxEntries: 6}, []string{"more than 6 files, links and directories", "node_modules/ (7)", ".routinesignore"}},
		{"too many bytes", func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{"data/a": strings.Repeat("x", 600), "data/b": strings.Repeat("x", 600), "small": "x"})
		}, Limits{MaxBytes: 1000}, []string{"more than 1000 bytes of files", "data/ (1200 bytes)", ".routinesignore"}},
		{"file too large", func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{"model.bin": strings.Repeat("x", 2048)})
		}, Limits{MaxFileBytes: 1024}, []string{"model.bin: 2 KiB, past the limit of 1 KiB for one file", ".routinesignore"}},
		{"zip bomb", func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{"zeros.bin": strings.Repeat("\x00", 4<<20)})
		}, Limits{}, []string{`entry "zeros.bin"`, "expands over", ".routinesignore"}},
		{"backslash", func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{`a\b`: "x"})
		}, Limits{}, []string{`a\b: `, "backslash"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"routine.yaml": "name: x\n"})
			c.make(t, dir)
			_, err := Create(dir, CreateOptions{Limits: c.limits})
			t.Log(err)
			if !contains(err, c.want...) {
				t.Errorf("got %v, want an error with %q", err, c.want)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "bundle "+dir+": ") {
				t.Errorf("error %q does not name the directory", err)
			}
		})
	}
}

// A link may lead through another link, as long as where it ends is in the
// bundle.
func TestCreateLinkThroughLink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"v2/run.sh": "v2"})
	symlink(t, "v2", filepath.Join(dir, "current"))
	symlink(t, "current/run.sh", filepath.Join(dir, "run"))
	b, err := Create(dir, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(tempDir(t), "x")
	if err := Extract(bytes.NewReader(b.Data), dest, Limits{}); err != nil {
		t.Fatal(err)
	}
	if body, err := os.ReadFile(filepath.Join(dest, "run")); err != nil || string(body) != "v2" {
		t.Errorf("run: %q, %v", body, err)
	}
}

func TestCreateProgress(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a": strings.Repeat("a", 100_000), "b": strings.Repeat("b", 50_000), "c": ""})
	var calls [][2]int64
	_, err := Create(dir, CreateOptions{Progress: func(done, total int64) { calls = append(calls, [2]int64{done, total}) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) < 3 || calls[0] != [2]int64{0, 150_000} || calls[len(calls)-1] != [2]int64{150_000, 150_000} {
		t.Fatalf("progress %v, want (0, 150000) first, (150000, 150000) last and some between", calls)
	}
	for i := 1; i < len(calls); i++ {
		if calls[i][0] < calls[i-1][0] || calls[i][1] != 150_000 {
			t.Fatalf("progress goes back or changes its total: %v", calls)
		}
	}
}

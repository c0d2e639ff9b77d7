package steps

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/template"
)

func TestParseOutputs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     routine.Outputs
		err      string
	}{
		{"empty", "", routine.Outputs{}, ""},
		{"pairs", "a=1\nb=x=y\n\nc=\n", routine.Outputs{"a": "1", "b": "x=y", "c": ""}, ""},
		{"heredoc", "body<<EOF\nline 1\n\nline=3\nEOF\nk=v\n", routine.Outputs{"body": "line 1\n\nline=3", "k": "v"}, ""},
		{"heredoc crlf", "a<<X\r\nhi\r\nX\r\n", routine.Outputs{"a": "hi"}, ""},
		{"later wins", "a=1\na=2\n", routine.Outputs{"a": "2"}, ""},
		{"unclosed", "a<<EOF\nhi\n", nil, `not closed by a line "EOF"`},
		{"no equals", "just text\n", nil, "expected key=value"},
		{"bad key", "a b=1\n", nil, "invalid key"},
		{"empty delimiter", "a<<\n", nil, "empty delimiter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseOutputs(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestCommandLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "exec.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "noshebang.sh"), []byte("echo hi\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "plain.sh"), []byte("echo hi\n"), 0o644)
	os.Mkdir(filepath.Join(dir, "adir"), 0o755)
	bash, sh := lookPath("bash", DefaultPath), lookPath("sh", DefaultPath)
	echo, trueBin := lookPath("echo", DefaultPath), lookPath("true", DefaultPath)
	shellArgv := func(line string) []string {
		return []string{"bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", line}
	}
	tests := []struct {
		run, shell string
		prog       string
		argv       []string
		direct     bool
	}{
		{"true", "", trueBin, []string{"true"}, true},
		{"echo hello world", "", echo, []string{"echo", "hello", "world"}, true},
		{"./exec.sh --full a=b", "", filepath.Join(dir, "exec.sh"), []string{"./exec.sh", "--full", "a=b"}, true},
		{"./plain.sh x", "", bash, []string{"bash", "./plain.sh", "x"}, false},
		{"./plain.sh", "sh", sh, []string{"sh", "./plain.sh"}, false},
		// Bash runs an executable without a shebang as a script; so must we.
		{"./noshebang.sh", "", bash, shellArgv("./noshebang.sh"), false},
		// Missing programs and directories: the shell's own 127 and 126.
		{"./missing.sh", "", bash, shellArgv("./missing.sh"), false},
		{"./adir", "", bash, shellArgv("./adir"), false},
		{"no-such-program-xyz", "", bash, shellArgv("no-such-program-xyz"), false},
		// Builtins whose programs differ: through the shell.
		{"echo --version", "", bash, shellArgv("echo --version"), false},
		{"true --help", "", bash, shellArgv("true --help"), false},
		{"printf x", "", bash, shellArgv("printf x"), false},
		{"pwd", "", bash, shellArgv("pwd"), false},
		{"echo $HOME", "", bash, shellArgv("echo $HOME"), false},
		{"cd /tmp", "", bash, shellArgv("cd /tmp"), false},
		{"FOO=1 env", "", bash, shellArgv("FOO=1 env"), false},
		{"ls *.sh", "", bash, shellArgv("ls *.sh"), false},
		{"echo 'quoted'", "sh", sh, []string{"sh", "-e", "-c", "echo 'quoted'"}, false},
	}
	for _, tt := range tests {
		prog, argv, direct := commandLine(&routine.Action{Run: tt.run, Shell: tt.shell}, dir, DefaultPath)
		if prog != tt.prog || !reflect.DeepEqual(argv, tt.argv) || direct != tt.direct {
			t.Errorf("commandLine(%q, shell %q) = %q %q %v; want %q %q %v", tt.run, tt.shell, prog, argv, direct, tt.prog, tt.argv, tt.direct)
		}
	}
}

// TestFastPathMatchesTheShell runs lines both ways and compares what they
// print and exit with.
func TestFastPathMatchesTheShell(t *testing.T) {
	t.Parallel()
	for _, line := range []string{"echo hello world", "true", "false", "printenv PWD", "./noshebang.sh", "./missing.sh", "echo --version"} {
		x, stdout, stderr := execution(t, line)
		os.WriteFile(filepath.Join(x.Dir, "noshebang.sh"), []byte("echo from script\n"), 0o755)
		res, _ := RunKind{}.Execute(context.Background(), x)
		y, stdout2, _ := execution(t, "eval \""+line+"\"")
		y.Dir = x.Dir
		res2, _ := RunKind{}.Execute(context.Background(), y)
		if stdout.String() != stdout2.String() || *res.ExitCode != *res2.ExitCode {
			t.Errorf("%q: direct %q exit %d; shell %q exit %d (stderr %q)", line, stdout.String(), *res.ExitCode, stdout2.String(), *res2.ExitCode, stderr.String())
		}
	}
}

// lockedBuffer collects output written from the sandbox's reader goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func execution(t *testing.T, run string) (*stepkind.Execution, *lockedBuffer, *lockedBuffer) {
	t.Helper()
	dir, ws := t.TempDir(), t.TempDir()
	var stdout, stderr lockedBuffer
	return &stepkind.Execution{
		RunID: "01RUN", StepID: "step", Attempt: 1,
		Action:       &routine.Action{Run: run},
		Dir:          dir,
		Workspace:    ws,
		ArtifactsDir: filepath.Join(ws, "artifacts", "step"),
		ArtifactsIn:  filepath.Join(ws, "artifacts"),
		Env:          map[string]string{"GREETING": "hi"},
		Stdout:       &stdout,
		Stderr:       &stderr,
	}, &stdout, &stderr
}

func TestRunOutputsArtifactsAndEnv(t *testing.T) {
	t.Parallel()
	x, stdout, _ := execution(t, `echo "$GREETING from $ROUTINES_STEP_ID"
printf 'a=1\nbody<<EOF\nx\ny\nEOF\n' >> "$ROUTINES_OUTPUT"
echo data > report.txt
env | cut -d= -f1 | sort | tr '\n' ' ' >&2`)
	x.Artifacts = []string{"report.txt"}
	var stderr lockedBuffer
	x.Stderr = &stderr
	res, err := RunKind{}.Execute(context.Background(), x)
	if err != nil {
		t.Fatalf("execute: %v (stderr %s)", err, stderr.String())
	}
	if got := stdout.String(); got != "hi from step\n" {
		t.Fatalf("stdout %q", got)
	}
	if !reflect.DeepEqual(res.Outputs, routine.Outputs{"a": "1", "body": "x\ny"}) || *res.ExitCode != 0 {
		t.Fatalf("result %+v", res)
	}
	data, err := os.ReadFile(filepath.Join(x.ArtifactsDir, "report.txt"))
	if err != nil || string(data) != "data\n" {
		t.Fatalf("artifact %q %v", data, err)
	}
	// The environment is exactly what the engine gave plus ROUTINES_*: nothing
	// of the test process (bash adds PWD, SHLVL and _ itself).
	want := "GREETING HOME PATH PWD ROUTINES_ARTIFACTS ROUTINES_ARTIFACTS_IN ROUTINES_ATTEMPT ROUTINES_OUTPUT ROUTINES_RUN_ID ROUTINES_STEP_ID ROUTINES_WORKSPACE SHLVL TMPDIR _ "
	if got := stderr.String(); got != want {
		t.Fatalf("env names\n got %s\nwant %s", got, want)
	}
}

func TestRunFailureAndMissingArtifact(t *testing.T) {
	t.Parallel()
	x, _, stderr := execution(t, "echo oops >&2; exit 3")
	res, err := RunKind{}.Execute(context.Background(), x)
	if err == nil || err.Error() != "exit status 3" || *res.ExitCode != 3 || stderr.String() != "oops\n" {
		t.Fatalf("res %+v err %v stderr %q", res, err, stderr.String())
	}
	x, _, _ = execution(t, "true")
	x.Artifacts = []string{"never.txt"}
	if _, err := (RunKind{}).Execute(context.Background(), x); err == nil || !strings.Contains(err.Error(), "never.txt") {
		t.Fatalf("missing artifact: %v", err)
	}
}

func TestRunConfinedToRoutineDirAndPermissions(t *testing.T) {
	t.Parallel()
	outside, granted := t.TempDir(), t.TempDir()
	x, _, stderr := execution(t, "echo x > "+filepath.Join(outside, "f"))
	if _, err := (RunKind{}).Execute(context.Background(), x); err == nil {
		t.Fatal("a step wrote outside its routine directory")
	}
	if _, err := os.Stat(filepath.Join(outside, "f")); !os.IsNotExist(err) {
		t.Fatalf("file created outside: %v", err)
	}
	// Outside the grants a path is missing (the mount namespace) or
	// denied (Landlock, where the host has no mount namespaces).
	if e := stderr.String(); !strings.Contains(e, "Permission denied") && !strings.Contains(e, "No such file or directory") {
		t.Fatalf("stderr %q", stderr.String())
	}
	x, _, stderr = execution(t, "echo x > "+filepath.Join(granted, "f")+" && echo y > inside")
	x.Permissions = &routine.Permissions{Write: []string{granted}}
	if _, err := (RunKind{}).Execute(context.Background(), x); err != nil {
		t.Fatalf("granted write failed: %v %s", err, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(granted, "f")); err != nil {
		t.Fatal(err)
	}
}

// TestRunLineValueIsOneArgument: a line with a {{ }} value never takes the
// fast path (its reference holds $ and quotes), and the program the shell
// starts gets the value as exactly one argument, whatever it holds.
func TestRunLineValueIsOneArgument(t *testing.T) {
	t.Parallel()
	const value = "a  b * $(touch pwned) `touch pwned` ; touch pwned\n-n"
	for _, src := range []string{"./args.sh {{ input.x }}", "./args.sh x{{ input.x }}y", "./args.sh '{{ input.x }}'"} {
		l, err := template.ParseShell(src, "")
		if err != nil {
			t.Fatal(err)
		}
		line, vars, err := l.Render(&template.Context{Input: map[string]string{"x": value}})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := plainCommand(line); ok {
			t.Fatalf("%q: the rendered line %q takes the fast path", src, line)
		}
		x, stdout, stderr := execution(t, line)
		os.WriteFile(filepath.Join(x.Dir, "args.sh"), []byte("#!/bin/sh\nprintf '%s|' \"$#\" \"$@\"\n"), 0o755)
		for k, v := range vars {
			x.Env[k] = v
		}
		if _, err := (RunKind{}).Execute(context.Background(), x); err != nil {
			t.Fatalf("%q: %v (stderr %q)", src, err, stderr.String())
		}
		want := "1|" + strings.ReplaceAll(strings.ReplaceAll(src, "./args.sh ", ""), "{{ input.x }}", value) + "|"
		want = strings.ReplaceAll(want, "'", "")
		if stdout.String() != want {
			t.Errorf("%q: the program got %q, want %q", src, stdout.String(), want)
		}
		if _, err := os.Stat(filepath.Join(x.Dir, "pwned")); err == nil {
			t.Errorf("%q: the value ran a command", src)
		}
	}
}

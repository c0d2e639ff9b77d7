package steps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/sandbox"
)

// DefaultPath is the PATH of a step whose env does not set one.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// RunKind runs a shell line or a script in the sandbox.
type RunKind struct{}

// Name implements Kind.
func (RunKind) Name() string { return "run" }

// Execute implements Kind: it starts the command confined by the sandbox,
// streams its output, then reads $ROUTINES_OUTPUT and keeps the declared
// artifacts.
func (RunKind) Execute(ctx context.Context, x *Execution) (*Result, error) {
	a := x.Action
	workdir := x.Dir
	if a.Workdir != "" {
		workdir = filepath.Join(x.Dir, a.Workdir)
	}
	// Nothing is created per step unless the step asks for it: creating a
	// file or directory costs as much as starting a process on some disks.
	// The step creates $ROUTINES_OUTPUT when it writes an output.
	outputFile := filepath.Join(x.Workspace, ".output-"+x.StepID+"-"+strconv.Itoa(x.Attempt))
	if err := os.Remove(outputFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("prepare outputs file: %w", err)
	}
	if x.Artifacts != nil {
		if err := os.MkdirAll(x.ArtifactsDir, 0o700); err != nil {
			return nil, fmt.Errorf("prepare artifacts directory: %w", err)
		}
	}

	env := stepEnv(x, outputFile)
	argv, err := commandLine(a, workdir, env["PATH"])
	if err != nil {
		return nil, err
	}
	readWrite := []string{x.Dir, x.Workspace}
	var readOnly []string
	if p := x.Permissions; p != nil {
		readWrite = append(readWrite, absPaths(x.Dir, p.Write)...)
		readOnly = absPaths(x.Dir, p.Read)
	}
	policy := sandbox.Policy{
		ReadWrite:  readWrite,
		ReadOnly:   readOnly,
		Network:    x.Permissions.NetworkAllowed(),
		Unconfined: x.Unconfined,
	}
	if l := x.Limits; l != nil {
		policy.MemoryBytes = int64(l.Memory)
		policy.CPUSeconds = int64((l.CPU.D() + 999_999_999) / 1_000_000_000)
	}
	res, err := sandbox.Run(ctx, &sandbox.Command{
		Path:   argv[0],
		Args:   argv,
		Dir:    workdir,
		Env:    envList(env),
		Stdout: x.Stdout,
		Stderr: x.Stderr,
		Policy: policy,
	})
	if err != nil {
		return nil, err
	}
	code := res.ExitCode
	result := &Result{ExitCode: &code, CPUUser: res.CPUUser, CPUSys: res.CPUSys, MaxRSSKB: res.MaxRSSKB}
	if res.ExitCode != 0 {
		if res.Signal != "" {
			return result, fmt.Errorf("terminated by signal: %s", res.Signal)
		}
		return result, fmt.Errorf("exit status %d", res.ExitCode)
	}
	data, err := os.ReadFile(outputFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return result, fmt.Errorf("read outputs: %w", err)
	}
	if result.Outputs, err = ParseOutputs(string(data)); err != nil {
		return result, err
	}
	if err := keepArtifacts(workdir, x.ArtifactsDir, x.Artifacts); err != nil {
		return result, err
	}
	return result, nil
}

// stepEnv is the scrubbed environment of the child: the execution's env plus
// the ROUTINES_* variables, and nothing inherited from the engine. HOME and
// TMPDIR are the run's workspace, which the engine empties (but for
// artifacts) when the run ends.
func stepEnv(x *Execution, outputFile string) map[string]string {
	env := make(map[string]string, len(x.Env)+12)
	env["PATH"] = DefaultPath
	env["HOME"] = x.Workspace
	env["TMPDIR"] = x.Workspace
	for k, v := range x.Env {
		env[k] = v
	}
	env["ROUTINES_RUN_ID"] = x.RunID
	env["ROUTINES_STEP_ID"] = x.StepID
	env["ROUTINES_ATTEMPT"] = strconv.Itoa(x.Attempt)
	env["ROUTINES_WORKSPACE"] = x.Workspace
	env["ROUTINES_OUTPUT"] = outputFile
	env["ROUTINES_ARTIFACTS"] = x.ArtifactsDir
	env["ROUTINES_ARTIFACTS_IN"] = x.ArtifactsIn
	return env
}

func envList(env map[string]string) []string {
	list := make([]string, 0, len(env))
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	sort.Strings(list)
	return list
}

// commandLine turns a run line into argv. A line that is a plain command
// with literal arguments (no quoting, expansion, redirection or shell
// builtin) is executed directly: the shell would only fork and exec it, and
// skipping it saves a process start per step. Everything else goes through
// the shell.
func commandLine(a *routine.Action, workdir, path string) ([]string, error) {
	shell := a.Shell
	if shell == "" {
		shell = "bash"
		if lookPath("bash", path) == "" {
			shell = "sh"
		}
	}
	if words, ok := plainCommand(a.Run); ok {
		first := words[0]
		if strings.Contains(first, "/") {
			script := first
			if !filepath.IsAbs(script) {
				script = filepath.Join(workdir, script)
			}
			info, err := os.Stat(script)
			if err != nil {
				return nil, fmt.Errorf("script %s: %w", first, err)
			}
			if info.Mode()&0o111 != 0 {
				return append([]string{script}, words[1:]...), nil
			}
			// Not executable: run it with the shell, as `bash script` would.
			return append([]string{lookPathOr(shell, path), script}, words[1:]...), nil
		}
		if exe := lookPath(first, path); exe != "" {
			return append([]string{exe}, words[1:]...), nil
		}
	}
	if shell == "sh" {
		return []string{lookPathOr("sh", path), "-e", "-c", a.Run}, nil
	}
	return []string{lookPathOr(shell, path), "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", a.Run}, nil
}

// plainCommand splits a line made only of characters the shell passes
// through unchanged, whose first word is not a shell builtin or keyword.
func plainCommand(line string) ([]string, bool) {
	for _, c := range line {
		ok := c == ' ' || c == '\t' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.ContainsRune("-_./:,+@%^=", c)
		if !ok {
			return nil, false
		}
	}
	words := strings.Fields(line)
	if len(words) == 0 || strings.Contains(words[0], "=") || shellWords[words[0]] {
		return nil, false
	}
	return words, true
}

// shellWords are bash builtins and keywords whose meaning differs from (or
// has no) program of the same name. echo, printf, true, false, test, kill
// and pwd behave the same as their programs, so they are not listed.
var shellWords = map[string]bool{
	"alias": true, "bg": true, "bind": true, "break": true, "builtin": true, "caller": true, "cd": true,
	"command": true, "compgen": true, "complete": true, "compopt": true, "continue": true, "declare": true,
	"dirs": true, "disown": true, "enable": true, "eval": true, "exec": true, "exit": true, "export": true,
	"fc": true, "fg": true, "getopts": true, "hash": true, "help": true, "history": true, "jobs": true,
	"let": true, "local": true, "logout": true, "mapfile": true, "popd": true, "pushd": true, "read": true,
	"readarray": true, "readonly": true, "return": true, "set": true, "shift": true, "shopt": true,
	"source": true, "suspend": true, "times": true, "trap": true, "type": true, "typeset": true,
	"ulimit": true, "umask": true, "unalias": true, "unset": true, "wait": true, ".": true,
	"if": true, "then": true, "else": true, "elif": true, "fi": true, "case": true, "esac": true,
	"for": true, "while": true, "until": true, "do": true, "done": true, "function": true,
	"select": true, "time": true, "coproc": true,
}

// lookPath finds an executable named file in the directories of path.
func lookPath(file, path string) string {
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, file)
		if info, err := os.Stat(p); err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

func lookPathOr(file, path string) string {
	if p := lookPath(file, path); p != "" {
		return p
	}
	return file
}

// absPaths resolves permission paths relative to the routine directory.
func absPaths(dir string, paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		if filepath.IsAbs(p) {
			out[i] = filepath.Clean(p)
		} else {
			out[i] = filepath.Join(dir, p)
		}
	}
	return out
}

// keepArtifacts copies the declared artifact files into the step's
// artifacts directory, keeping their relative paths.
func keepArtifacts(workdir, dst string, files []string) error {
	for _, f := range files {
		if err := copyFile(filepath.Join(workdir, f), filepath.Join(dst, f)); err != nil {
			return fmt.Errorf("keep artifact %s: %w", f, err)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("the step did not create it")
		}
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

var _ Kind = RunKind{}

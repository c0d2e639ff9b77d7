package steps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/sandbox"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/workspace"
)

// Execute implements Kind: it starts the command confined by the sandbox,
// streams its output, then reads $ROUTINES_OUTPUT and keeps the declared
// artifacts.
func (RunKind) Execute(ctx context.Context, x *stepkind.Execution) (*stepkind.Result, error) {
	a := x.Action
	workdir := x.Dir
	if a.Workdir != "" {
		workdir = filepath.Join(x.Dir, a.Workdir)
	}
	// Nothing is created per step unless the step asks for it: creating a
	// file or directory costs as much as starting a process on some disks.
	// The step creates $ROUTINES_OUTPUT when it writes an output.
	// The run's workspace is created by its first run step (an open after
	// that): runs of builtin steps only never touch the disk for it. It
	// stays open while the step runs: what the engine reads and writes
	// there afterwards is reached from this descriptor, beneath it and
	// through no link, whatever the step did to its paths.
	ws, err := workspace.Create(x.Workspace)
	if err != nil {
		return nil, fmt.Errorf("create workspace: %w", err)
	}
	defer ws.Close()
	outputName := workspace.OutputName(x.StepID, x.Attempt)
	if err := ws.Remove(outputName); err != nil {
		return nil, fmt.Errorf("prepare outputs file: %w", err)
	}
	if x.Artifacts != nil {
		// An earlier step may have planted a link in place of a folder.
		if err := ws.MkdirAll(relative(x.Workspace, x.ArtifactsDir)); err != nil {
			return nil, fmt.Errorf("prepare artifacts directory: %w", err)
		}
	}
	outputFile := filepath.Join(x.Workspace, outputName)

	env := stepEnv(x, outputFile)
	env["PWD"] = workdir
	prog, argv, direct := commandLine(a, workdir, env["PATH"])
	if direct {
		// What bash exports to the programs it starts.
		env["SHLVL"] = "1"
		env["_"] = prog
	}
	policy := sandboxPolicy(x)
	if l := x.Limits; l != nil {
		policy.MemoryBytes = int64(l.Memory)
		policy.CPUSeconds = int64((l.CPU.D() + 999_999_999) / 1_000_000_000)
	}
	res, err := sandbox.Run(ctx, &sandbox.Command{
		Path:   prog,
		Args:   argv,
		Dir:    workdir,
		Env:    envList(env),
		Stdout: x.Stdout,
		Stderr: x.Stderr,
		Policy: policy,
		Run:    x.RunID,
		Name:   x.StepID + "-" + strconv.Itoa(x.Attempt),
	})
	if err != nil {
		return nil, err
	}
	code := res.ExitCode
	result := &stepkind.Result{ExitCode: &code, CPUUser: res.CPUUser, CPUSys: res.CPUSys, MaxRSSKB: res.MaxRSSKB}
	if res.ExitCode != 0 {
		return result, exitError(res, policy.Resources)
	}
	// The step owns $ROUTINES_OUTPUT: what is there may be a link to the
	// engine's environment or a FIFO. Only the step's own regular file is
	// read, so a parse error quotes nothing but what the step wrote.
	data, err := ws.ReadFile(outputName, workspace.MaxOutputBytes)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return result, fmt.Errorf("read $ROUTINES_OUTPUT: %w", err)
	}
	if result.Outputs, err = ParseOutputs(string(data)); err != nil {
		return result, err
	}
	if err := keepArtifacts(x, workdir, ws); err != nil {
		return result, err
	}
	return result, nil
}

// exitError describes a step that did not exit 0; one that hit a limit
// of its cgroup says which, with a code of its own.
func exitError(res *sandbox.Result, limits sandbox.Resources) error {
	err := fmt.Errorf("exit status %d", res.ExitCode)
	if res.Signal != "" {
		err = fmt.Errorf("terminated by signal: %s", res.Signal)
	}
	switch {
	case res.OOMKilled:
		return stepkind.Fail(routine.CodeOOM, false, fmt.Errorf("%w: out of memory (resources.memory, %s)", err, limitText(limits.MemoryBytes, "bytes")))
	case res.PidsLimited:
		return stepkind.Fail(routine.CodePidsLimit, false, fmt.Errorf("%w: a fork failed at the pids limit (resources.pids, %s)", err, limitText(limits.Pids, "")))
	}
	return err
}

func limitText(n int64, unit string) string {
	if n == 0 {
		return "the default"
	}
	if unit != "" {
		return strconv.FormatInt(n, 10) + " " + unit
	}
	return strconv.FormatInt(n, 10)
}

// stepEnv is the scrubbed environment of the child: the execution's env plus
// the ROUTINES_* variables, and nothing inherited from the engine. HOME and
// TMPDIR are the run's workspace, which the engine empties (but for
// artifacts) when the run ends.
func stepEnv(x *stepkind.Execution, outputFile string) map[string]string {
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

// commandLine turns a run line into the program to start and its argv. A
// line that is a plain command with literal arguments (no quoting,
// expansion, redirection or shell builtin) naming an executable with a
// shebang or an ELF header is executed directly: the shell would only fork
// and exec it, and skipping it saves a process start per step. Everything
// else goes through the shell, so it behaves exactly as the shell would
// (a missing program is exit 127, a file without a shebang runs as a shell
// script). direct reports the fast path.
func commandLine(a *routine.Action, workdir, path string) (prog string, argv []string, direct bool) {
	shell := a.Shell
	if shell == "" {
		shell = "bash"
	}
	if words, ok := plainCommand(a.Run); ok {
		first := words[0]
		exe := ""
		if strings.Contains(first, "/") {
			exe = first
			if !filepath.IsAbs(exe) {
				exe = filepath.Join(workdir, exe)
			}
		} else {
			exe = lookPath(first, path)
		}
		if exe != "" && directExecutable(exe) && (!shellBuiltin[first] || sameAsBuiltin(words, exe)) {
			return exe, words, true
		}
		if exe != "" && strings.Contains(first, "/") && !executable(exe) && isRegular(exe) {
			// Not executable: run the script with the shell, as `bash script` would.
			sh := lookPathOr(shell, path)
			return sh, append([]string{shell, first}, words[1:]...), false
		}
	}
	sh := lookPathOr(shell, path)
	if shell == "sh" {
		return sh, []string{"sh", "-e", "-c", a.Run}, false
	}
	return sh, []string{shell, "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", a.Run}, false
}

// plainCommand splits a line made only of characters the shell passes
// through unchanged, whose first word is not a variable assignment nor a
// shell keyword or builtin without a program of its own.
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

// shellWords are bash keywords and builtins that the fast path never runs
// as a program.
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
	"printf": true, "test": true, "kill": true, "pwd": true,
}

// shellBuiltin are builtins that also exist as programs; see sameAsBuiltin.
var shellBuiltin = map[string]bool{"true": true, "false": true, "echo": true}

// sameAsBuiltin reports whether running the system program exe gives what
// the shell's builtin would: true and false without arguments, echo with
// no argument starting with "-" (no options, no --help), and only the
// programs of the system, not one a routine put first in PATH.
func sameAsBuiltin(words []string, exe string) bool {
	if dir := filepath.Dir(exe); dir != "/usr/bin" && dir != "/bin" {
		return false
	}
	switch words[0] {
	case "true", "false":
		return len(words) == 1
	case "echo":
		for _, w := range words[1:] {
			if strings.HasPrefix(w, "-") {
				return false
			}
		}
		return true
	}
	return false
}

// directExecutable reports whether the kernel can execute the file itself:
// a regular, executable file starting with "#!" or an ELF header. A file
// without either runs as a shell script when the shell starts it, so it
// must go through the shell.
func directExecutable(path string) bool {
	if !executable(path) {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var head [4]byte
	n, _ := io.ReadFull(f, head[:])
	return n >= 2 && head[0] == '#' && head[1] == '!' || n == 4 && string(head[:]) == "\x7fELF"
}

func executable(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0
}

func isRegular(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular()
}

// lookPath finds an executable named file in the directories of path.
func lookPath(file, path string) string {
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		if p := filepath.Join(dir, file); executable(p) {
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

// keepArtifacts copies the declared artifact files, read beneath the
// routine directory, into the step's artifacts folder beneath the
// workspace ws, keeping their paths relative to the workdir.
func keepArtifacts(x *stepkind.Execution, workdir string, ws *workspace.Dir) error {
	if len(x.Artifacts) == 0 {
		return nil
	}
	dir, err := workspace.Open(x.Dir)
	if err != nil {
		return fmt.Errorf("keep artifacts: %w", err)
	}
	defer dir.Close()
	src, dst := relative(x.Dir, workdir), relative(x.Workspace, x.ArtifactsDir)
	// A routine at the project root holds the project's .routines (the
	// store, the vault key, other runs' workspaces), which its steps may
	// not read: the engine does not copy it out for them. No link is
	// followed beneath x.Dir, so the path's letters say where it leads.
	private := relative(x.Dir, x.StateDir)
	for _, f := range x.Artifacts {
		from := filepath.Join(src, f)
		if x.StateDir != "" && (from == private || strings.HasPrefix(from, private+"/")) {
			return fmt.Errorf("keep artifact %s: inside the project's .routines directory", f)
		}
		err := dir.CopyFile(from, ws, filepath.Join(dst, f), workspace.MaxArtifactBytes)
		if errors.Is(err, os.ErrNotExist) {
			err = errors.New("the step did not create it")
		}
		if err != nil {
			return fmt.Errorf("keep artifact %s: %w", f, err)
		}
	}
	return nil
}

// relative is path relative to dir; a path outside dir comes out with ".."
// and the workspace package refuses it.
func relative(dir, path string) string {
	rel, err := filepath.Rel(dir, path)
	if err != nil {
		return path
	}
	return rel
}

package steps

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/sandbox"
	"github.com/routines-dev/routines/internal/stepkind"
)

// mcpCommand prepares the stdio server of s: its program started in the
// routine directory, in its own process group, with the environment a
// run step has (but for $ROUTINES_OUTPUT), confined by the sandbox as run
// steps are, but for memory and CPU limits.
func mcpCommand(x *stepkind.Execution, s routine.AgentMCPServer) (*commandTransport, error) {
	env := map[string]string{"PATH": DefaultPath}
	if x.Workspace != "" {
		if err := os.MkdirAll(x.Workspace, 0o700); err != nil {
			return nil, fmt.Errorf("create workspace: %w", err)
		}
		env["HOME"], env["TMPDIR"], env["ROUTINES_WORKSPACE"] = x.Workspace, x.Workspace, x.Workspace
	}
	for k, v := range x.Env {
		env[k] = v
	}
	env["ROUTINES_RUN_ID"] = x.RunID
	env["ROUTINES_STEP_ID"] = x.StepID
	env["ROUTINES_ATTEMPT"] = strconv.Itoa(x.Attempt)
	prog, err := findProgram(x.Dir, s.Command[0], env["PATH"])
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(prog, s.Command[1:]...)
	cmd.Args[0] = s.Command[0]
	cmd.Dir = x.Dir
	cmd.Env = envList(env)
	if x.Stderr != nil {
		cmd.Stderr = x.Stderr // the server's own log
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 2 * time.Second
	return &commandTransport{
		inner:  &mcp.CommandTransport{Command: cmd, TerminateDuration: 2 * time.Second},
		policy: sandboxPolicy(x),
		run:    x.RunID,
		name:   x.StepID + "-mcp-" + strconv.Itoa(x.Attempt),
	}, nil
}

// findProgram resolves the program of a command: a path with a slash is
// relative to the routine directory, a bare name is looked up in the
// step's PATH.
func findProgram(dir, prog, path string) (string, error) {
	if strings.Contains(prog, "/") {
		if !filepath.IsAbs(prog) {
			prog = filepath.Join(dir, prog)
		}
		return prog, nil
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			continue
		}
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		f := filepath.Join(d, prog)
		if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return f, nil
		}
	}
	return "", fmt.Errorf("command %s: not found in PATH %s", prog, path)
}

// commandTransport is mcp.CommandTransport with the server started in the
// sandbox, and all its processes killed when the session ends.
type commandTransport struct {
	inner     *mcp.CommandTransport
	policy    sandbox.Policy
	run, name string // of its cgroup
}

// Connect implements mcp.Transport.
func (t *commandTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	var conn mcp.Connection
	stop, err := sandbox.Start(&t.policy, t.run, t.name, t.inner.Command.SysProcAttr, func() error {
		var err error
		conn, err = t.inner.Connect(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", t.inner.Command.Path, err)
	}
	return groupConn{Connection: conn, cmd: t.inner.Command, stop: stop}, nil
}

// groupConn kills what is left of the server's processes once the
// connection, and so the server, is closed: its process group, and its
// cgroup (what left the group).
type groupConn struct {
	mcp.Connection
	cmd  *exec.Cmd
	stop func()
}

func (c groupConn) Close() error {
	err := c.Connection.Close()
	if p := c.cmd.Process; p != nil {
		_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	}
	c.stop()
	return err
}

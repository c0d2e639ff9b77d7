package steps

import (
	"path/filepath"
	"sort"

	"github.com/routines-dev/routines/internal/sandbox"
	"github.com/routines-dev/routines/internal/stepkind"
)

// DefaultPath is the PATH of a step whose env does not set one.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// RunKind runs a shell line or a script in the sandbox.
type RunKind struct{}

// Name implements Kind.
func (RunKind) Name() string { return "run" }

// sandboxPolicy is what the processes of x may touch and use: the
// routine directory, the run's workspace, the permissions, the resources,
// the project's state directory hidden.
func sandboxPolicy(x *stepkind.Execution) sandbox.Policy {
	readWrite := []string{x.Dir}
	if x.Workspace != "" {
		readWrite = append(readWrite, x.Workspace)
	}
	var readOnly []string
	if p := x.Permissions; p != nil {
		readWrite = append(readWrite, absPaths(x.Dir, p.Write)...)
		readOnly = absPaths(x.Dir, p.Read)
	}
	policy := sandbox.Policy{
		ReadWrite:    readWrite,
		ReadOnly:     readOnly,
		Network:      x.Permissions.NetworkAllowed(),
		Unconfined:   x.Unconfined,
		AllowMissing: x.AllowMissing,
	}
	if x.StateDir != "" {
		// The project's store, vault key and other runs' workspaces, when
		// the routine directory holds them.
		policy.Hide = []string{x.StateDir}
	}
	if r := x.Resources; r != nil {
		policy.Resources = sandbox.Resources{MemoryBytes: int64(r.Memory), Pids: int64(r.Pids), CPU: r.CPU}
	}
	return policy
}

func envList(env map[string]string) []string {
	list := make([]string, 0, len(env))
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	sort.Strings(list)
	return list
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

var _ stepkind.Kind = RunKind{}

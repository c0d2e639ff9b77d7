package sandbox

import (
	"bytes"
	"os/exec"
	"testing"
)

func benchmarkRun(b *testing.B, c *Command) {
	b.Helper()
	for b.Loop() {
		res, err := Run(b.Context(), c)
		if err != nil || res.ExitCode != 0 {
			b.Fatalf("Run: %v, %+v", err, res)
		}
	}
}

func benchPolicy(b *testing.B) Policy {
	b.Helper()
	if _, err := Check(); err != nil {
		b.Skipf("no Landlock: %v", err)
	}
	return Policy{ReadWrite: []string{b.TempDir(), b.TempDir()}}
}

// BenchmarkRunTrue is a confined /bin/true: the per-step cost of the sandbox
// is its difference from BenchmarkRunTrueUnconfined.
func BenchmarkRunTrue(b *testing.B) {
	benchmarkRun(b, &Command{Path: "/bin/true", Policy: benchPolicy(b)})
}

func BenchmarkRunTrueUnconfined(b *testing.B) {
	benchmarkRun(b, &Command{Path: "/bin/true", Policy: Policy{Unconfined: true}})
}

// BenchmarkRunTrueLimited adds rlimits, which stop the child at its exec.
func BenchmarkRunTrueLimited(b *testing.B) {
	p := benchPolicy(b)
	p.MemoryBytes, p.CPUSeconds = 1<<30, 60
	benchmarkRun(b, &Command{Path: "/bin/true", Policy: p})
}

// BenchmarkRunTrueCaptured adds a pipe and a copying goroutine for output.
func BenchmarkRunTrueCaptured(b *testing.B) {
	var out bytes.Buffer
	benchmarkRun(b, &Command{Path: "/bin/true", Stdout: &out, Stderr: &out, Policy: benchPolicy(b)})
}

// lineWriter stands for the engine's writers, which split lines and keep
// them: not an *os.File, so the child's output goes through a pipe.
type lineWriter struct{ lines int }

func (w *lineWriter) Write(p []byte) (int, error) {
	w.lines += bytes.Count(p, []byte{'\n'})
	return len(p), nil
}

// BenchmarkRunTrueTwoWriters is what the engine does: a separate writer for
// stdout and for stderr, so two pipes.
func BenchmarkRunTrueTwoWriters(b *testing.B) {
	benchmarkRun(b, &Command{Path: "/bin/true", Stdout: &lineWriter{}, Stderr: &lineWriter{}, Policy: benchPolicy(b)})
}

// BenchmarkExecTrue is the floor: os/exec with nothing else.
func BenchmarkExecTrue(b *testing.B) {
	for b.Loop() {
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRunTrueInRun is a step as the engine runs it: one of many of a
// run, which share the run's mount namespace.
func BenchmarkRunTrueInRun(b *testing.B) {
	benchmarkRun(b, &Command{Path: "/bin/true", Policy: benchPolicy(b), Run: "bench-run"})
}

// BenchmarkRunTrueInRunNoNetwork adds the run's network namespace.
func BenchmarkRunTrueInRunNoNetwork(b *testing.B) {
	p := benchPolicy(b)
	p.Network = false
	benchmarkRun(b, &Command{Path: "/bin/true", Policy: p, Run: "bench-run-nonet"})
}

// BenchmarkMountNamespace is what a run pays once for its mount namespace.
func BenchmarkMountNamespace(b *testing.B) {
	if err := mountNamespaces(); err != nil {
		b.Skip(err)
	}
	p := benchPolicy(b)
	for b.Loop() {
		fd, err := newMountNS(&p)
		if err != nil {
			b.Fatal(err)
		}
		closeNS(fd)
	}
}

// BenchmarkNetworkNamespace is what a run with network: false pays once.
func BenchmarkNetworkNamespace(b *testing.B) {
	for b.Loop() {
		fd, err := newNetns()
		if err != nil {
			b.Skip(err)
		}
		closeNS(fd)
	}
}

// BenchmarkStepCgroup is the cgroup every step makes and removes.
func BenchmarkStepCgroup(b *testing.B) {
	for b.Loop() {
		cg, _, err := newStepCgroup("bench", "step", DefaultResources())
		if err != nil {
			b.Fatal(err)
		}
		cg.remove()
	}
}

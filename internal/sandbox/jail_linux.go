package sandbox

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// jail is everything one child is confined by besides its process group:
// the Landlock ruleset, the network namespace and the cgroup.
type jail struct {
	ruleset *keptRuleset // nil when unconfined
	netns   *keptNS      // nil with the network allowed
	mountns *keptNS      // nil without mount namespaces
	cgroup  *stepCgroup
}

// newJail prepares the confinement of c, or says which layer c's policy
// asks for that the host cannot give.
func newJail(c *Command) (*jail, error) {
	p := &c.Policy
	if err := p.checkPlantedLinks(); err != nil {
		return nil, err
	}
	j := &jail{}
	var err error
	if !p.Unconfined {
		if j.ruleset, err = acquireRuleset(p); err != nil {
			return nil, err
		}
	}
	if !p.Network {
		if j.netns, err = acquireNS(runKey("net", c.Run, ""), newNetns); err != nil {
			if !p.allows(LayerNetwork) {
				j.close()
				return nil, fmt.Errorf("%w (permissions.network: false needs it; the operator can run without it with --allow-missing network, leaving only Landlock's TCP rules)", err)
			}
			j.netns = nil
		}
	}
	if !p.Unconfined && !noMountNamespaces.Load() {
		key := runKey("mnt", c.Run, rulesetKey(p)+"\n"+strings.Join(p.Hide, "\x00"))
		j.mountns, err = acquireNS(key, func() (int, error) { return newMountNS(p) })
		switch {
		case errors.Is(err, ErrUnavailable):
			// Not root: steps see the host's files, Landlock decides
			// (routines doctor says so). Not asked again.
			noMountNamespaces.Store(true)
		case err != nil:
			j.close()
			return nil, err
		}
	}
	cg, missing, err := newStepCgroup(c.Run, c.Name, p.Resources.withDefaults())
	if err != nil {
		j.close()
		return nil, err
	}
	j.cgroup = cg
	for _, layer := range missing {
		if p.Resources.explicit(layer) && !p.allows(layer) {
			j.close()
			return nil, fmt.Errorf("%w: resources.%s needs the %s cgroup controller, which this host does not delegate to routines (see routines doctor); the operator can run without it with --allow-missing %s",
				ErrUnavailable, layer, layer, layer)
		}
	}
	return j, nil
}

// checkPlantedLinks refuses a policy path that lies inside a writable
// grant and reaches its place through a link: a step of an earlier run
// could have planted that link to widen this one's grants.
func (p *Policy) checkPlantedLinks() error {
	for _, paths := range [2][]string{p.ReadWrite, p.ReadOnly} {
		for _, path := range paths {
			for _, parent := range p.ReadWrite {
				rel, err := filepath.Rel(parent, path)
				if err != nil || rel == "." || !filepath.IsLocal(rel) {
					continue
				}
				dir, err := unix.Open(parent, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
				if err != nil {
					return fmt.Errorf("policy path %s: %w", parent, err)
				}
				fd, err := unix.Openat2(dir, rel, &unix.OpenHow{
					Flags:   unix.O_PATH | unix.O_CLOEXEC,
					Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
				})
				unix.Close(dir)
				switch {
				case err == nil:
					unix.Close(fd)
				case err == unix.ELOOP || err == unix.EXDEV:
					return fmt.Errorf("policy path %s goes through a link inside %s, which steps can write: refused (a step may have planted it)", path, parent)
				case err != unix.ENOSYS:
					return fmt.Errorf("policy path %s: %w", path, err)
				}
			}
		}
	}
	return nil
}

// noMountNamespaces is set once making a mount namespace failed for want
// of privileges.
var noMountNamespaces atomic.Bool

// explicit reports whether the limit of layer was set, not defaulted.
func (r Resources) explicit(layer string) bool {
	switch layer {
	case LayerMemory:
		return r.MemoryBytes > 0
	case LayerPids:
		return r.Pids > 0
	case LayerCPU:
		return r.CPU > 0
	}
	return false
}

func (p *Policy) allows(layer string) bool { return slices.Contains(p.AllowMissing, layer) }

// thread is how the starting thread is set up.
func (j *jail) thread() stepThread {
	t := stepThread{ruleset: -1, netns: -1, mountns: -1}
	if j.ruleset != nil {
		t.ruleset = j.ruleset.fd
	}
	if j.netns != nil {
		t.netns = j.netns.fd
	}
	if j.mountns != nil {
		t.mountns = j.mountns.fd
	}
	return t
}

// started lets go of what the child has taken on at its start.
func (j *jail) started() {
	if j.ruleset != nil {
		j.ruleset.release()
		j.ruleset = nil
	}
	if j.netns != nil {
		j.netns.release()
		j.netns = nil
	}
	if j.mountns != nil {
		j.mountns.release()
		j.mountns = nil
	}
}

// runKey names a namespace kept for the steps of run; "" (never shared)
// for a child of no run.
func runKey(kind, run, policy string) string {
	if run == "" {
		return ""
	}
	return kind + "\x00" + run + "\x00" + policy
}

// close releases the jail once its child is gone, killing what is left in
// its cgroup.
func (j *jail) close() {
	j.started()
	if j.cgroup != nil {
		j.cgroup.remove()
		j.cgroup = nil
	}
}

// Require checks, before anything runs, that this host gives the layers
// named in need, but for those in allow: a routine that asks for a
// protection the host cannot give is refused, with the reason.
func Require(need, allow []string) error {
	if len(need) == 0 { // what most routines need: nothing to probe
		return nil
	}
	return require(hostLayers(), need, allow)
}

func require(layers []LayerStatus, need, allow []string) error {
	for _, l := range layers {
		if !l.Active && slices.Contains(need, l.Name) && !slices.Contains(allow, l.Name) {
			return fmt.Errorf("%w: the routine needs the %s layer, which this host lacks: %s; %s (or let the operator run without it: --allow-missing %s)",
				ErrUnavailable, l.Name, l.Detail, l.Fix, l.Name)
		}
	}
	return nil
}

var hostLayers = sync.OnceValue(Layers)

// Layers reports each layer of the sandbox on this host, in the order of
// the Layer constants. It starts a process and makes a network namespace
// to see what the host allows.
func Layers() []LayerStatus {
	var out []LayerStatus
	if abi, err := Check(); err != nil {
		out = append(out, LayerStatus{Name: LayerLandlock, Detail: err.Error(),
			Fix: "use Linux 5.13 or later with landlock in the lsm= boot parameter; steps refuse to run without it unless serve gets --allow-unconfined"})
	} else {
		d := fmt.Sprintf("Landlock ABI %d: files, no_new_privs, no capabilities", abi)
		if abi >= 6 {
			d += ", signals and abstract unix sockets scoped to the step"
		}
		if abi < 4 {
			d += "; TCP rules need ABI 4"
		}
		out = append(out, LayerStatus{Name: LayerLandlock, Active: true, Detail: d})
	}
	if fd, err := newNetns(); err != nil {
		out = append(out, LayerStatus{Name: LayerNetwork, Detail: err.Error(),
			Fix: "run the engine as root; routines with permissions.network: false are refused meanwhile, unless serve gets --allow-missing network"})
	} else {
		unix.Close(fd)
		out = append(out, LayerStatus{Name: LayerNetwork, Active: true, Detail: "network: false runs steps in a network namespace of the run with only loopback"})
	}
	if err := mountNamespaces(); err != nil {
		out = append(out, LayerStatus{Name: LayerMount, Detail: err.Error(),
			Fix: "run the engine as root; steps then see the whole host file system (Landlock still denies what is not granted, but not unix sockets by path before Landlock ABI 9)"})
	} else {
		out = append(out, LayerStatus{Name: LayerMount, Active: true, Detail: "a mount namespace per run: only the grants exist, .routines hidden, /proc shows a step its own processes"})
	}
	h := hostCgroups()
	if h.v2 != "" {
		out = append(out, LayerStatus{Name: LayerCgroup, Active: true, Detail: "cgroup v2 at " + h.v2 + ": a cgroup per step, killed whole at its end; exact CPU time"})
	} else {
		out = append(out, LayerStatus{Name: LayerCgroup, Detail: fmt.Sprint(h.v2Err),
			Fix: "mount cgroup2 (Linux 5.14 or later) and run the engine as root or in a delegated cgroup (systemd: Delegate=yes)"})
	}
	for _, c := range limitControllers {
		switch {
		case h.v2Limits[c]:
			out = append(out, LayerStatus{Name: c, Active: true, Detail: "cgroup v2 controller " + c})
		case h.v1[c] != "":
			out = append(out, LayerStatus{Name: c, Active: true, Detail: "cgroup v1 controller " + c + " at " + h.v1[c]})
		default:
			out = append(out, LayerStatus{Name: c, Detail: "no " + c + " controller is delegated to the engine",
				Fix: strings.TrimSpace("delegate the " + c + " controller to the engine's cgroup (systemd: Delegate=yes); routines that set resources." + c + " are refused meanwhile, unless serve gets --allow-missing " + c)})
		}
	}
	return out
}

package cli

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/sandbox"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// doctorReport is doctor's -o json.
type doctorReport struct {
	Layers []sandbox.LayerStatus `json:"layers"`
	// Store is the check of the project's store; null when the project
	// has none.
	Store *storeCheck `json:"store"`
}

func newDoctorCmd(g *globals) *cobra.Command {
	var quick bool
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the sandbox layers this host gives run steps, and the integrity of the project's store",
		Long: "doctor checks, on this host and as this user, each layer that confines run steps: Landlock, the network\n" +
			"namespace of network: false, the cgroup per step, and the memory, pids and cpu controllers of resources:.\n" +
			"Off Linux there is no sandbox: doctor says so (" + docsURL + "/platforms.md).\n" +
			"Then it checks the project's store (.routines/state.db), which a daemon may be using: SQLite's\n" +
			"integrity_check reads every page (--quick: quick_check, which skips comparing indexes with their\n" +
			"tables), and its schema version against this binary's. A damaged store is restored from a backup.\n" +
			"Docs: " + docsURL + "/sandbox.md explains each layer, " + docsURL + "/operations.md the store.",
		Args: argsRange(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			sc, err := g.checkStore(cmd, quick)
			if err != nil {
				return err
			}
			layers := sandbox.Layers()
			if err := g.sandboxSupported(); err != nil && g.output != "json" {
				fmt.Fprintf(g.deps.Stdout, "no sandbox on this host: %v\n", err)
				sc.print(g.deps.Stdout)
				return &exitError{code: ExitFailed, err: errSilent}
			}
			if g.output == "json" {
				if err := writeJSON(g.deps.Stdout, doctorReport{Layers: layers, Store: sc}); err != nil {
					return err
				}
			} else {
				rows := [][]string{{"LAYER", "STATUS", "DETAIL"}}
				var fixes []string
				for _, l := range layers {
					status := "active"
					if !l.Active {
						status = "MISSING"
						if slices.Contains(g.allowMissing, l.Name) {
							status = "missing (allowed)"
						}
						fixes = append(fixes, fmt.Sprintf("%s: %s", l.Name, l.Fix))
					}
					rows = append(rows, []string{l.Name, status, l.Detail})
				}
				if err := table(g.deps.Stdout, rows); err != nil {
					return err
				}
				if len(fixes) > 0 {
					fmt.Fprintf(g.deps.Stdout, "\nTo get the missing layers:\n  %s\n", strings.Join(fixes, "\n  "))
				}
				sc.print(g.deps.Stdout)
			}
			failed := !sc.ok()
			for _, l := range layers {
				failed = failed || !l.Active
			}
			if failed {
				return &exitError{code: ExitFailed, err: errSilent}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&quick, "quick", false, "check the store with quick_check: a fraction of the time on a big store, but damage that only an index shows goes unseen")
	return cmd
}

// logLayers writes which sandbox layers this host gives, as serve starts.
func logLayers(logger *slog.Logger) {
	if err := sandbox.Supported(); err != nil {
		logger.Warn("no sandbox on this host: routines with run steps are refused", "why", err)
		return
	}
	var active, missing []string
	for _, l := range sandbox.Layers() {
		if l.Active {
			active = append(active, l.Name)
			continue
		}
		missing = append(missing, l.Name)
		logger.Warn("sandbox layer missing", "layer", l.Name, "why", l.Detail, "fix", l.Fix)
	}
	logger.Info("sandbox layers", "active", strings.Join(active, ","), "missing", strings.Join(missing, ","))
}

// layerNames checks names given to --allow-missing.
func layerNames(names []string) error {
	valid := []string{sandbox.LayerNetwork, sandbox.LayerMemory, sandbox.LayerPids, sandbox.LayerCPU}
	for _, n := range names {
		if !slices.Contains(valid, n) {
			return fmt.Errorf("--allow-missing %s: write one of %s", n, strings.Join(valid, ", "))
		}
	}
	return nil
}

// storeCheck is what doctor found in the project's store.
type storeCheck struct {
	*sqlite.CheckResult
	// Status is ok, damaged or newer (a newer binary's schema).
	Status string `json:"status"`
	// Fix says what to do when Status is not ok.
	Fix string `json:"fix,omitempty"`
}

// checkStore checks the store of the project around the current
// directory; nil when it has none.
func (g *globals) checkStore(cmd *cobra.Command, quick bool) (*storeCheck, error) {
	if g.profileName() != "" {
		return nil, nil // a server's store is not here
	}
	p, err := g.projectFor(".")
	if err != nil {
		return nil, invalid(err)
	}
	if !p.HasStore() {
		return nil, nil
	}
	res, err := sqlite.Check(cmd.Context(), p.StorePath(), quick)
	if err != nil {
		return nil, fmt.Errorf("check the store: %w", err)
	}
	sc := &storeCheck{CheckResult: res, Status: "ok"}
	switch {
	case len(res.Problems) > 0:
		sc.Status = "damaged"
		sc.Fix = fmt.Sprintf("stop the daemon, then put the newest good backup in place: routines restore BACKUP --project %s "+
			"(backups taken before upgrades are in %s); the damaged store is kept aside (%s/operations.md#integrity-and-upgrades)",
			p.Dir, filepath.Join(p.StateDir(), "backups"), docsURL)
	case res.Schema > res.Latest:
		sc.Status = "newer"
		sc.Fix = fmt.Sprintf("schema %d was written by a newer routines than this one (%d): run that version or a newer one", res.Schema, res.Latest)
	}
	return sc, nil
}

func (sc *storeCheck) ok() bool { return sc == nil || sc.Status == "ok" }

// print writes the check for people, after the layers.
func (sc *storeCheck) print(w io.Writer) {
	if sc == nil {
		return
	}
	fmt.Fprintf(w, "\nStore %s:\n", sc.File)
	switch sc.Status {
	case "damaged":
		fmt.Fprintf(w, "  DAMAGED (%s found %d problem(s)):\n    %s\n", sc.Check, len(sc.Problems), strings.Join(sc.Problems, "\n    "))
	default:
		fmt.Fprintf(w, "  %s: ok in %s\n", sc.Check, sc.Took.Round(time.Millisecond))
	}
	switch {
	case sc.Schema > sc.Latest:
		fmt.Fprintf(w, "  schema %d: NEWER than this binary's %d\n", sc.Schema, sc.Latest)
	case sc.Schema < sc.Latest:
		fmt.Fprintf(w, "  schema %d: migrated to this binary's %d when next opened, after a backup into .routines/backups/\n", sc.Schema, sc.Latest)
	default:
		fmt.Fprintf(w, "  schema %d: this binary's\n", sc.Schema)
	}
	if sc.Fix != "" {
		fmt.Fprintf(w, "To repair it: %s\n", sc.Fix)
	}
}

package cli

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/sandbox"
)

func newDoctorCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Show which layers of the sandbox this host gives run steps, and what to do about missing ones",
		Long: "doctor checks, on this host and as this user, each layer that confines run steps: Landlock, the network\n" +
			"namespace of network: false, the cgroup per step, and the memory, pids and cpu controllers of resources:.\n" +
			"Off Linux there is no sandbox: doctor says so (" + docsURL + "/platforms.md).\n" +
			"Docs: " + docsURL + "/sandbox.md explains each layer.",
		Args: argsRange(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			layers := sandbox.Layers()
			if err := g.sandboxSupported(); err != nil && g.output != "json" {
				fmt.Fprintf(g.deps.Stdout, "no sandbox on this host: %v\n", err)
				return &exitError{code: ExitFailed, err: errSilent}
			}
			if g.output == "json" {
				if err := writeJSON(g.deps.Stdout, layers); err != nil {
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
			}
			for _, l := range layers {
				if !l.Active {
					return &exitError{code: ExitFailed, err: errSilent}
				}
			}
			return nil
		},
	}
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

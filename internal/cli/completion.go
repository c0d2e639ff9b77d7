package cli

import (
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/project"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/spec"
	"github.com/routines-dev/routines/internal/store"
)

// completionRuns is how many of the newest runs completion offers.
const completionRuns = 100

// addCompletions teaches the shell completion of `routines completion`
// the arguments of the commands: routine names, run ids, directories,
// and the values of -o, --state and --routine. Cobra completes commands
// and flag names by itself.
func addCompletions(root *cobra.Command, g *globals) {
	names := func(dirs bool) cobra.CompletionFunc {
		return func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			out := g.routineNames(toComplete)
			if dirs { // DIR|FILE|NAME: the shell adds the paths
				return out, cobra.ShellCompDirectiveDefault
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		}
	}
	dirsOnly := func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return nil, cobra.ShellCompDirectiveFilterDirs
	}
	walk(root, func(c *cobra.Command) {
		if c.Annotations[takesRun] != "" {
			c.ValidArgsFunction = onlyFirst(g.completeRuns)
		}
		switch c.CommandPath() {
		case "routines run-once", "routines validate":
			c.ValidArgsFunction = onlyFirst(names(true))
		case "routines invoke":
			c.ValidArgsFunction = onlyFirst(names(false))
		case "routines test", "routines serve", "routines init":
			c.ValidArgsFunction = dirsOnly
		}
	})
	flag := func(path, name string, fn cobra.CompletionFunc) {
		c, _, err := root.Find(strings.Fields(path)[1:])
		if err != nil || c.Flags().Lookup(name) == nil {
			panic("completion of --" + name + ": no such flag on " + path)
		}
		_ = c.RegisterFlagCompletionFunc(name, fn)
	}
	flag("routines runs", "state", completeStates)
	flag("routines runs", "routine", names(false))
	flag("routines test", "record", g.completeRuns)
	_ = root.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return []cobra.Completion{"text", "json", cobra.CompletionWithDesc("junit", "routines test only")}, cobra.ShellCompDirectiveNoFileComp
	})
}

// onlyFirst completes the first argument with fn, and no other.
func onlyFirst(fn cobra.CompletionFunc) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return fn(cmd, args, toComplete)
	}
}

// walk calls fn for c and every command under it.
func walk(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		walk(sub, fn)
	}
}

// routineNames returns the names of the routines of the project that
// start with prefix, each described by its directory.
func (g *globals) routineNames(prefix string) []cobra.Completion {
	p, err := g.projectFor(".")
	if err != nil {
		return nil
	}
	var out []cobra.Completion
	_ = project.Walk(p.Dir, project.WalkOptions{MaxDirs: maxNameSearch}, func(path string) error {
		r, err := spec.Load(path)
		if err == nil && strings.HasPrefix(r.Name, prefix) {
			dir, _ := filepath.Rel(p.Dir, r.Dir)
			out = append(out, cobra.CompletionWithDesc(r.Name, dir))
		}
		return nil
	})
	return out
}

// completeRuns offers last and the ids of the newest runs (the dead
// ones, for a command annotated so), each described by its routine,
// state and when it was queued.
func (g *globals) completeRuns(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	p := &store.RunListParams{Limit: completionRuns}
	what := "run"
	if s := cmd.Annotations[takesRun]; s != "" && s != "all" {
		p.States, what = []routine.State{routine.State(s)}, s+" run"
	}
	var out []cobra.Completion
	if strings.HasPrefix("last", toComplete) {
		out = append(out, cobra.CompletionWithDesc("last", "the newest "+what))
	}
	_ = g.withStore(cmd.Context(), func(st store.Store) error {
		runs, err := st.RunList(cmd.Context(), p)
		for _, r := range runs {
			if strings.HasPrefix(r.ID, strings.ToUpper(toComplete)) {
				out = append(out, cobra.CompletionWithDesc(r.ID, r.Routine+" "+string(r.State)+" "+stamp(&r.QueuedAt)))
			}
		}
		return err
	})
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveKeepOrder
}

// completeStates offers the states of runs, after those already written
// in a comma-separated list.
func completeStates(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	done := toComplete[:strings.LastIndex(toComplete, ",")+1]
	var out []cobra.Completion
	for _, s := range routine.RunStates {
		if c := done + string(s); strings.HasPrefix(c, toComplete) {
			out = append(out, c)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

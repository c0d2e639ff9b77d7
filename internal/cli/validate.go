package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/spec"
	"github.com/routines-dev/routines/internal/trigger"
)

// nextFiresShown is how many firing times validate shows per trigger.
const nextFiresShown = 3

func newValidateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate [DIR|FILE|NAME]",
		Short: "Check a routine.yaml and report every problem with its position",
		Long: "validate parses and checks a routine without running anything. Problems are printed as\n" +
			"routine.yaml:LINE:COL: message, with the line shown, and so are warnings (such as how a\n" +
			"six-field cron is read). A valid routine's cron and every triggers show their next " + fmt.Sprint(nextFiresShown) + "\n" +
			"firing times.",
		Args: argsRange(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, _, err := g.loadRoutine(firstArg(args))
			if err == nil {
				// The file is valid: written here, it may well run on a
				// Linux host. Say where it cannot run, without failing.
				if perr := g.platformProblem(r); perr != nil {
					msg := strings.TrimPrefix(perr.Error(), r.File+": ")
					r.Warnings = append(r.Warnings, spec.Problem{File: r.File, Line: 1, Col: 1, Message: "this host cannot run it: " + msg, Warning: true})
				}
			}
			if err != nil {
				if g.output != "json" {
					return err
				}
				problems := spec.Problems(err)
				if problems == nil {
					problems = []spec.Problem{{Message: err.Error()}}
				}
				if werr := writeJSON(g.deps.Stdout, map[string]any{"valid": false, "problems": problems}); werr != nil {
					return werr
				}
				return &exitError{code: ExitInvalid, err: errSilent}
			}
			// Whole seconds: every: times counted from now read better so.
			fires, err := nextFires(r, g.now().Truncate(time.Second), nextFiresShown)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return writeJSON(g.deps.Stdout, map[string]any{"valid": true, "name": r.Name, "file": r.File, "revision": r.Revision,
					"problems": []any{}, "warnings": append([]spec.Problem{}, r.Warnings...), "next_fires": fires})
			}
			writeWarnings(g.deps.Stderr, r)
			fmt.Fprintf(g.deps.Stdout, "%s: valid (routine %s, %s, %s)\n", r.File, r.Name, count(len(r.Steps)+len(r.OnFailure), "step"), count(len(r.Triggers), "trigger"))
			return writeNextFires(g.deps.Stdout, fires)
		},
	}
}

// now reads the commands' clock.
func (g *globals) now() time.Time {
	if g.deps.Now != nil {
		return g.deps.Now()
	}
	return time.Now()
}

// scheduleFires is when one cron: or every: trigger of a routine fires
// next, as -o json shows it.
type scheduleFires struct {
	Trigger  int         `json:"trigger"` // its index in triggers:
	Cron     string      `json:"cron,omitempty"`
	Timezone string      `json:"timezone,omitempty"`
	Every    string      `json:"every,omitempty"`
	Next     []time.Time `json:"next"`
}

// nextFires returns the next n firing times of each cron: and every:
// trigger of r after now, counting every: from now as if the daemon
// started now.
func nextFires(r *routine.Routine, now time.Time, n int) ([]scheduleFires, error) {
	out := []scheduleFires{}
	for i, t := range r.Triggers {
		next, err := trigger.NextFires(t, time.Time{}, now, n)
		if err != nil {
			return nil, fmt.Errorf("%s: triggers[%d]: %w", r.File, i, err)
		}
		if next == nil {
			next = []time.Time{} // -o json: [], not null
		}
		switch t.Kind() {
		case "cron":
			tz := t.Timezone
			if tz == "" {
				tz = "UTC"
			}
			out = append(out, scheduleFires{Trigger: i, Cron: t.Cron, Timezone: tz, Next: next})
		case "every":
			out = append(out, scheduleFires{Trigger: i, Every: t.Every.String(), Next: next})
		}
	}
	return out, nil
}

// writeNextFires prints the firing times of nextFires, one a line under
// each trigger, with the zone's abbreviation and UTC offset.
func writeNextFires(w io.Writer, fires []scheduleFires) error {
	var b strings.Builder
	for _, f := range fires {
		switch {
		case f.Cron != "" && len(f.Next) == 0:
			fmt.Fprintf(&b, "triggers[%d] cron %q in %s never fires: no time matches it in the next five years\n", f.Trigger, f.Cron, f.Timezone)
		case f.Cron != "":
			fmt.Fprintf(&b, "triggers[%d] cron %q in %s, next fires:\n", f.Trigger, f.Cron, f.Timezone)
		default:
			fmt.Fprintf(&b, "triggers[%d] every %s, next fires counted from now (a daemon counts from its start or the last firing):\n", f.Trigger, f.Every)
		}
		for _, t := range f.Next {
			b.WriteString("  " + t.Format("Mon 2006-01-02 15:04:05 MST (UTC-07:00)") + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func newSchemaCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of routine.yaml",
		Long: "schema prints the JSON Schema of routine.yaml, generated from the types the parser uses.\n" +
			"Save it and point your editor at it with a first line such as\n" +
			"# yaml-language-server: $schema=./routine.schema.json",
		Args: argsRange(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := g.deps.Stdout.Write(spec.Schema())
			return err
		},
	}
}

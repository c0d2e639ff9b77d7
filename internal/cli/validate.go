package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/spec"
)

func newValidateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate [DIR|FILE|NAME]",
		Short: "Check a routine.yaml and report every problem with its position",
		Long: "validate parses and checks a routine without running anything. Problems are printed as\n" +
			"routine.yaml:LINE:COL: message, with the line shown. Exit 0 when valid, 2 when not.",
		Args: argsRange(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, _, err := g.loadRoutine(firstArg(args))
			if err == nil {
				if perr := g.platformProblem(r); perr != nil {
					err = invalid(perr)
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
			if g.output == "json" {
				return writeJSON(g.deps.Stdout, map[string]any{"valid": true, "name": r.Name, "file": r.File, "revision": r.Revision, "problems": []any{}})
			}
			fmt.Fprintf(g.deps.Stdout, "%s: valid (routine %s, %s, %s)\n", r.File, r.Name, count(len(r.Steps)+len(r.OnFailure), "step"), count(len(r.Triggers), "trigger"))
			return nil
		},
	}
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

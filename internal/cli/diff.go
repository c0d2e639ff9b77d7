package cli

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"unicode/utf8"

	"github.com/aymanbagabas/go-udiff"
	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/bundle"
	"github.com/routines-dev/routines/internal/client"
)

func newDiffCmd(g *globals) *cobra.Command {
	var d deployment
	cmd := &cobra.Command{
		Use:   "diff NAME REV1 [REV2]",
		Short: "Show what changed in a pushed routine's directory between two revisions",
		Long: "diff fetches two revisions of a pushed routine (hashes or unique prefixes, as routines revisions\n" +
			"lists them; REV2 defaults to the current revision) and prints a unified diff of their files.",
		Args: argsRange(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.deploymentClient(&d)
			if err != nil {
				return err
			}
			to := ""
			if len(args) == 3 {
				to = args[2]
			}
			return g.diff(cmd.Context(), c, args[0], args[1], to)
		},
	}
	d.flags(cmd)
	return cmd
}

// diff prints the unified diff of the files of two revisions of a routine.
func (g *globals) diff(ctx context.Context, c *client.Client, name, from, to string) error {
	if to == "" {
		list, err := c.Revisions(ctx, name, 1)
		if err != nil {
			return g.apiErr(err)
		}
		to = list[0].Revision
	}
	tmp, err := os.MkdirTemp("", "routines-diff-")
	if err != nil {
		return err
	}
	defer bundle.RemoveTree(tmp)
	var trees [2]map[string][]byte
	for i, rev := range []string{from, to} {
		data, err := c.Bundle(ctx, name, rev, bundle.DefaultMaxBytes)
		if err != nil {
			return g.apiErr(err)
		}
		dir := filepath.Join(tmp, fmt.Sprint(i))
		if err := bundle.Extract(bytes.NewReader(data), dir, bundle.Limits{}); err != nil {
			return fmt.Errorf("revision %s of %s: %w", rev, name, err)
		}
		if trees[i], err = readTree(dir); err != nil {
			return err
		}
	}
	var paths []string
	for _, t := range trees {
		for p := range t {
			if !slices.Contains(paths, p) {
				paths = append(paths, p)
			}
		}
	}
	slices.Sort(paths)
	for _, p := range paths {
		a, inA := trees[0][p]
		b, inB := trees[1][p]
		if inA && inB && bytes.Equal(a, b) {
			continue
		}
		if !utf8.Valid(a) || !utf8.Valid(b) {
			fmt.Fprintf(g.deps.Stdout, "Binary files a/%s and b/%s differ\n", p, p)
			continue
		}
		oldName, newName := "a/"+p, "b/"+p
		if !inA {
			oldName = "/dev/null"
		}
		if !inB {
			newName = "/dev/null"
		}
		fmt.Fprint(g.deps.Stdout, udiff.Unified(oldName, newName, string(a), string(b)))
	}
	return nil
}

// readTree reads the regular files under dir, by slash-separated path;
// a link is shown as its target.
func readTree(dir string) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if e.Type()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(path)
			files[filepath.ToSlash(rel)] = []byte("-> " + target + "\n")
			return err
		}
		data, err := os.ReadFile(path)
		files[filepath.ToSlash(rel)] = data
		return err
	})
	return files, err
}

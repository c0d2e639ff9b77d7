package cli

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/bundle"
	"github.com/routines-dev/routines/internal/client"
	"github.com/routines-dev/routines/internal/project"
	"github.com/routines-dev/routines/internal/routine"
)

// deployment names the server that push, revisions and rollback talk to.
type deployment struct {
	server string
	token  string
}

func (d *deployment) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&d.server, "server", "", "URL of the deployment's server, such as https://routines.example.com (env ROUTINES_SERVER)")
	cmd.Flags().StringVar(&d.token, "token", "", "API token of the server (env ROUTINES_TOKEN)")
}

// deploymentRemote returns the deployment that --server names, else the
// selected profile (--profile or ROUTINES_PROFILE), else
// ROUTINES_SERVER; nil when none does. The token is --token, else
// ROUTINES_TOKEN, else the profile's.
func (g *globals) deploymentRemote(d *deployment) (*remote, error) {
	token := cmp.Or(d.token, g.getenv("ROUTINES_TOKEN"))
	if d.server != "" {
		return g.remoteAt(d.server, token)
	}
	return g.remote(token)
}

// deploymentClient returns the client of the deployment d names
// (deploymentRemote), which must be one.
func (g *globals) deploymentClient(d *deployment) (*client.Client, error) {
	rm, err := g.deploymentRemote(d)
	if err != nil {
		return nil, err
	}
	if rm == nil {
		return nil, invalidf("no server: give --server URL (or ROUTINES_SERVER), or --profile NAME of a `routines login`")
	}
	return rm.c, nil
}

func newPushCmd(g *globals) *cobra.Command {
	var (
		d       deployment
		message string
	)
	cmd := &cobra.Command{
		Use:   "push [DIR]",
		Short: "Push routines to a deployment as new revisions",
		Long: "push validates every routine under DIR (default: the current directory) and stops if any is invalid;\n" +
			"then it bundles each routine's directory (tar.gz, without .routines/, .git/ and what .gitignore and\n" +
			".routinesignore ignore) and uploads it. The server validates it again and makes it the routine's current\n" +
			"revision: new runs use it, runs already queued keep theirs. Pushing identical content changes nothing.\n" +
			"Docs: " + docsURL + "/remote.md",
		Args: argsRange(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.push(cmd.Context(), &d, firstArg(args), message)
		},
	}
	d.flags(cmd)
	cmd.Flags().StringVarP(&message, "message", "m", "", "why: recorded with the revision")
	return cmd
}

// push validates the routines under dir, then pushes each.
func (g *globals) push(ctx context.Context, d *deployment, dir, message string) error {
	if dir == "" {
		dir = "."
	}
	c, err := g.deploymentClient(d)
	if err != nil {
		return err
	}
	var (
		routines []*routine.Routine
		problems []string
	)
	err = project.Walk(dir, project.WalkOptions{}, func(path string) error {
		r, err := g.load(path)
		if err != nil {
			problems = append(problems, err.Error())
			return nil
		}
		routines = append(routines, r)
		return nil
	})
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return invalidf("%s\nnothing was pushed: fix the routines above (routines validate shows the same)", strings.Join(problems, "\n"))
	}
	if len(routines) == 0 {
		return invalidf("no routine.yaml under %s: push a routine's directory, or a directory holding routines", dir)
	}
	author := pushAuthor()
	var results []*api.PushResult
	for _, r := range routines {
		b, err := bundle.Create(r.Dir, bundle.CreateOptions{Progress: g.progress(r.Name)})
		if err != nil {
			return invalid(err)
		}
		res, err := c.Push(ctx, &client.Push{Bundle: b.Data, Author: author, Message: message, GitCommit: gitCommit(r.Dir)})
		if err != nil {
			return g.apiErr(fmt.Errorf("push %s: %w", r.Name, err))
		}
		results = append(results, res)
		if g.output != "json" {
			if res.Created {
				fmt.Fprintf(g.deps.Stdout, "%s: revision %s pushed (%d files, %s)\n", res.Routine, bundle.Short(res.Revision.Revision), len(b.Manifest.Files), bytesHuman(res.Size))
			} else {
				fmt.Fprintf(g.deps.Stdout, "%s: unchanged, revision %s is current already\n", res.Routine, bundle.Short(res.Revision.Revision))
			}
		}
	}
	if g.output == "json" {
		return writeJSON(g.deps.Stdout, results)
	}
	return nil
}

// progress returns the progress callback of a bundle of routine name:
// a line on stderr for a bundle of more than 4 MiB, none for the others.
func (g *globals) progress(name string) func(done, total int64) {
	last := time.Time{}
	return func(done, total int64) {
		if total < 4<<20 || (done < total && time.Since(last) < 200*time.Millisecond) {
			return
		}
		last = time.Now()
		fmt.Fprintf(g.deps.Stderr, "\rbundling %s: %s of %s", name, bytesHuman(done), bytesHuman(total))
		if done == total {
			fmt.Fprintln(g.deps.Stderr)
		}
	}
}

// bytesHuman shows a size in B, KiB, MiB or GiB.
func bytesHuman(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
}

// pushAuthor is who a push is recorded as: user@host.
func pushAuthor() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// gitCommit is the commit checked out in dir, when dir is in a git
// checkout and git is installed; "" otherwise. A checkout with changes
// gets "-dirty".
func gitCommit(dir string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	commit := strings.TrimSpace(string(out))
	if st, err := exec.CommandContext(ctx, "git", "-C", dir, "status", "--porcelain", "--", ".").Output(); err == nil && len(st) > 0 {
		commit += "-dirty"
	}
	return commit
}

func newRevisionsCmd(g *globals) *cobra.Command {
	var (
		d     deployment
		limit int
	)
	cmd := &cobra.Command{
		Use:   "revisions NAME",
		Short: "List the revisions of a pushed routine, the current one first",
		Args:  argsRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.deploymentClient(&d)
			if err != nil {
				return err
			}
			list, err := c.Revisions(cmd.Context(), args[0], limit)
			if err != nil {
				return g.apiErr(err)
			}
			if g.output == "json" {
				return writeJSON(g.deps.Stdout, list)
			}
			rows := [][]string{{"", "REVISION", "PUSHED", "AUTHOR", "SIZE", "MESSAGE"}}
			for _, rev := range list {
				mark, msg := "", rev.Message
				if rev.Current {
					mark = "*"
				}
				if rev.GitCommit != "" {
					msg = strings.TrimSpace(msg + " (git " + routine.ShortRevision(rev.GitCommit) + ")")
				}
				rows = append(rows, []string{mark, bundle.Short(rev.Revision), stamp(&rev.CreatedAt), rev.Author, bytesHuman(rev.Size), orDash(msg)})
			}
			return table(g.deps.Stdout, rows)
		},
	}
	d.flags(cmd)
	cmd.Flags().IntVar(&limit, "limit", 20, "revisions to list (0: all)")
	return cmd
}

func newRollbackCmd(g *globals) *cobra.Command {
	var (
		d       deployment
		message string
	)
	cmd := &cobra.Command{
		Use:   "rollback NAME REVISION",
		Short: "Make an earlier revision of a pushed routine current again",
		Long: "rollback records a new revision entry that points at REVISION (a hash or a unique prefix of one, as\n" +
			"routines revisions lists them): new runs use it; the history keeps every revision.",
		Args: argsRange(2, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.deploymentClient(&d)
			if err != nil {
				return err
			}
			rev, err := c.Rollback(cmd.Context(), args[0], api.Rollback{Revision: args[1], Message: message})
			if err != nil {
				return g.apiErr(err)
			}
			if g.output == "json" {
				return writeJSON(g.deps.Stdout, rev)
			}
			fmt.Fprintf(g.deps.Stdout, "%s: revision %s is current again (it replaces %s)\n", rev.Routine, bundle.Short(rev.Revision), bundle.Short(rev.RollbackOf))
			return nil
		},
	}
	d.flags(cmd)
	cmd.Flags().StringVarP(&message, "message", "m", "", "why: recorded with the rollback")
	return cmd
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/api"
)

// teamsDocs is where tokens, roles, namespaces and the audit trail are
// explained.
const teamsDocs = docsURL + "/teams.md"

func newTokensCmd(g *globals) *cobra.Command {
	var d deployment
	cmd := &cobra.Command{
		Use:   "tokens",
		Short: "Manage the API tokens of a deployment: create, list, revoke (an admin's)",
		Long: "Each token has a role — viewer (reads), invoker (also starts, cancels, re-runs and replays runs),\n" +
			"deployer (also pushes, rolls back, sets secrets), admin (also manages tokens and namespaces) — and a\n" +
			"namespace, the only one it sees. The server keeps only a hash of each: a value is shown once, at\n" +
			"create. Docs: " + teamsDocs,
		Args: argsRange(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return invalid(errors.New("tokens needs a command: routines tokens create, list, or revoke NAME"))
		},
	}
	var in api.TokenCreate
	create := &cobra.Command{
		Use:   "create --name NAME --role ROLE [--namespace NS] [--expires 30d]",
		Short: "Create a token and print its value, this once",
		Args:  argsRange(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if in.Name == "" || in.Role == "" {
				return invalidf("tokens create needs --name (such as ci-deploy) and --role (viewer, invoker, deployer or admin)")
			}
			c, err := g.deploymentClient(&d)
			if err != nil {
				return err
			}
			t, err := c.CreateToken(cmd.Context(), in)
			if err != nil {
				return g.apiErr(err)
			}
			if g.output == "json" {
				return writeJSON(g.deps.Stdout, t)
			}
			fmt.Fprintf(g.deps.Stderr, "token %s (%s of namespace %s), expires %s; its value, shown this once:\n",
				t.Name, t.Role, t.Namespace, orDash(stampOr(t.ExpiresAt, "never")))
			_, err = fmt.Fprintln(g.deps.Stdout, t.Value)
			return err
		},
	}
	create.Flags().StringVar(&in.Name, "name", "", "the token's name, unique in the deployment, such as ci-deploy")
	create.Flags().StringVar(&in.Role, "role", "", "viewer, invoker, deployer or admin")
	create.Flags().StringVar(&in.Namespace, "namespace", "", "the namespace it sees (default: yours)")
	create.Flags().StringVar(&in.Expires, "expires", "", "how long it lasts, such as 30d or 12h (default: until revoked)")
	list := &cobra.Command{
		Use:   "list",
		Short: "List the tokens you manage: names, roles, namespaces, expiry (never values)",
		Args:  argsRange(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.deploymentClient(&d)
			if err != nil {
				return err
			}
			list, err := c.ListTokens(cmd.Context())
			if err != nil {
				return g.apiErr(err)
			}
			if g.output == "json" {
				return writeJSON(g.deps.Stdout, list)
			}
			rows := [][]string{{"NAME", "ROLE", "NAMESPACE", "CREATED (UTC)", "EXPIRES (UTC)", "REVOKED (UTC)", "BY"}}
			for _, t := range list {
				rows = append(rows, []string{t.Name, t.Role, t.Namespace, stamp(&t.CreatedAt), stampOr(t.ExpiresAt, "never"), stamp(t.RevokedAt), orDash(t.CreatedBy)})
			}
			return table(g.deps.Stdout, rows)
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke NAME|ID",
		Short: "Revoke a token: its next request fails, on every server",
		Args:  argsRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.deploymentClient(&d)
			if err != nil {
				return err
			}
			t, err := c.RevokeToken(cmd.Context(), args[0])
			if err != nil {
				return g.apiErr(err)
			}
			if g.output == "json" {
				return writeJSON(g.deps.Stdout, t)
			}
			_, err = fmt.Fprintf(g.deps.Stdout, "revoked token %s (%s of namespace %s)\n", t.Name, t.Role, t.Namespace)
			return err
		},
	}
	for _, c := range []*cobra.Command{create, list, revoke} {
		d.flags(c)
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

// stampOr is stamp with another word than "-" for no time.
func stampOr(t *time.Time, none string) string {
	if t == nil {
		return none
	}
	return stamp(t)
}

func newNamespacesCmd(g *globals) *cobra.Command {
	var d deployment
	cmd := &cobra.Command{
		Use:   "namespaces",
		Short: "The policies of a deployment's namespaces: list, or set one's regions and ceilings (an operator's)",
		Long: "A namespace holds routines, their revisions, runs, events and secrets; a token sees only its own.\n" +
			"set pins a namespace to regions: a push of a routine that asks for another region (or none) is refused,\n" +
			"so its runs execute only on workers of those regions. It also sets the namespace's ceilings: the most\n" +
			"runs of its routines running at once across the fleet (--max-running), and queued (--max-queued: a run\n" +
			"past it is refused with 429). Docs: " + teamsDocs,
		Args: argsRange(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return invalid(errors.New("namespaces needs a command: routines namespaces list, or set NS --regions R1,R2 --max-running N --max-queued N"))
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the namespaces with a policy",
		Args:  argsRange(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.deploymentClient(&d)
			if err != nil {
				return err
			}
			list, err := c.ListNamespaces(cmd.Context())
			if err != nil {
				return g.apiErr(err)
			}
			if g.output == "json" {
				return writeJSON(g.deps.Stdout, list)
			}
			rows := [][]string{{"NAMESPACE", "REGIONS", "MAX RUNNING", "MAX QUEUED", "UPDATED (UTC)"}}
			for _, ns := range list {
				rows = append(rows, []string{ns.Name, regionsText(ns.Regions), ceilingText(ns.MaxRunning), ceilingText(ns.MaxQueued), stamp(&ns.UpdatedAt)})
			}
			return table(g.deps.Stdout, rows)
		},
	}
	var (
		regions               string
		maxRunning, maxQueued int
	)
	set := &cobra.Command{
		Use:   "set NS [--regions R1,R2] [--max-running N] [--max-queued N]",
		Short: "Set a namespace's regions and ceilings; the flags left out keep their value (0 lifts a ceiling, --regions '' a pin)",
		Args:  argsRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var in api.NamespaceSet
			if cmd.Flags().Changed("regions") {
				list := []string{}
				for _, r := range strings.Split(regions, ",") {
					if r = strings.TrimSpace(r); r != "" {
						list = append(list, r)
					}
				}
				in.Regions = &list
			}
			for _, f := range []struct {
				flag string
				v    int
				to   **int
			}{{"max-running", maxRunning, &in.MaxRunning}, {"max-queued", maxQueued, &in.MaxQueued}} {
				if !cmd.Flags().Changed(f.flag) {
					continue
				}
				if f.v < 0 {
					return invalidf("--%s %d: want 0 or more (0 lifts the ceiling)", f.flag, f.v)
				}
				*f.to = &f.v
			}
			if in == (api.NamespaceSet{}) {
				return invalidf("namespaces set needs --regions, --max-running or --max-queued, such as --regions eu-west,eu-central --max-running 10")
			}
			c, err := g.deploymentClient(&d)
			if err != nil {
				return err
			}
			out, err := c.SetNamespace(cmd.Context(), args[0], in)
			if err != nil {
				return g.apiErr(err)
			}
			if g.output == "json" {
				return writeJSON(g.deps.Stdout, out)
			}
			_, err = fmt.Fprintf(g.deps.Stdout, "namespace %s runs in: %s; running at once: %s; queued: %s\n",
				out.Name, regionsText(out.Regions), ceilingText(out.MaxRunning), ceilingText(out.MaxQueued))
			return err
		},
	}
	set.Flags().StringVar(&regions, "regions", "", "the regions its runs may execute in, comma-separated ('' for any)")
	set.Flags().IntVar(&maxRunning, "max-running", 0, "the most runs of its routines running at once across the fleet (0: no ceiling)")
	set.Flags().IntVar(&maxQueued, "max-queued", 0, "the most runs of its routines queued; a run past it is refused with 429 (0: no ceiling)")
	for _, c := range []*cobra.Command{list, set} {
		d.flags(c)
	}
	cmd.AddCommand(list, set)
	return cmd
}

// ceilingText is a ceiling of a namespace as the tables show it.
func ceilingText(n int) string {
	if n == 0 {
		return "none"
	}
	return strconv.Itoa(n)
}

func regionsText(regions []string) string {
	if len(regions) == 0 {
		return "any region"
	}
	return strings.Join(regions, ", ")
}

// auditRemote prints the trail of actions of the server d names.
func (g *globals) auditRemote(ctx context.Context, d *deployment, q api.AuditQuery) error {
	c, err := g.deploymentClient(d)
	if err != nil {
		return err
	}
	list, err := c.ListAudit(ctx, q)
	if err != nil {
		return g.apiErr(err)
	}
	if g.output == "json" {
		return writeJSON(g.deps.Stdout, list)
	}
	rows := [][]string{{"TIME (UTC)", "ACTOR", "ROLE", "NAMESPACE", "SOURCE", "ACTION", "TARGET", "OUTCOME", "DETAIL"}}
	for _, a := range list {
		rows = append(rows, []string{stamp(&a.Time), a.Actor, a.Role, a.Namespace, a.Source, a.Action, orDash(a.Target), a.Outcome, orDash(a.Detail)})
	}
	return table(g.deps.Stdout, rows)
}

// remoteNamed reports whether a server is named for d: --server,
// $ROUTINES_SERVER or a profile.
func (g *globals) remoteNamed(d *deployment) bool {
	return d.server != "" || g.getenv("ROUTINES_SERVER") != "" || g.profileName() != ""
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/project"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/secrets"
	"github.com/routines-dev/routines/internal/spec"
	"github.com/routines-dev/routines/internal/store"
)

func newSecretsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secrets",
		Short: "The builtin vault: secrets stored in the project, encrypted with age under a master key",
		Long: "The builtin vault keeps secret values in the project's store, encrypted with age under the master key\n" +
			"($" + secrets.MasterKeyEnv + ", else the key file ~/.config/routines/master.key, made by the first set).\n" +
			"With a server (--profile NAME or $ROUTINES_SERVER), the commands act on its vault, in the namespace of\n" +
			"the token (docs/teams.md). Values never appear on the command line, in listings or in logs.\n" +
			"Docs: " + docsURL + "/secrets.md",
		Args: argsRange(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return invalid(errors.New("secrets needs a command: routines secrets set NAME, list, or rm NAME"))
		},
	}
	var fromFile string
	set := &cobra.Command{
		Use:   "set NAME",
		Short: "Store or rotate a secret; the value is read from stdin (or --from-file), never from an argument",
		Long: "set reads the value from standard input: typed or pasted at a terminal (not echoed), or piped\n" +
			"(one trailing newline is dropped). --from-file reads a file as it is. A value holds at most 64 KiB.",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return invalid(errors.New("secrets set takes only NAME: the value is read from stdin (or --from-file), never from the command line, where it would stay in the shell's history"))
			}
			return argsRange(1, 1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.secretSet(cmd.Context(), args[0], fromFile)
		},
	}
	set.Flags().StringVar(&fromFile, "from-file", "", "read the value from this file, byte for byte")
	list := &cobra.Command{
		Use:   "list",
		Short: "List stored secrets: names, versions and when they were set (never values)",
		Args:  argsRange(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.secretList(cmd.Context())
		},
	}
	rm := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a stored secret",
		Args:  argsRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.secretRemove(cmd.Context(), args[0])
		},
	}
	cmd.AddCommand(set, list, rm)
	return cmd
}

// builtinVault opens the project's builtin vault around fn; create makes
// the store when the project has none.
func (g *globals) builtinVault(ctx context.Context, create bool, fn func(b *secrets.Builtin, p project.Project) error) error {
	p, err := g.projectFor(".")
	if err != nil {
		return err
	}
	keys, err := secrets.KeySourceFromEnv(g.getenv)
	if err != nil {
		return err
	}
	st, err := g.openStore(ctx, p, create)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(secrets.NewBuiltin(st, keys), p)
}

func (g *globals) secretSet(ctx context.Context, name, fromFile string) error {
	if err := secrets.CheckName(name); err != nil {
		return invalid(err)
	}
	rm, err := g.remote("")
	if err != nil {
		return err
	}
	value, err := g.readSecretValue(name, fromFile)
	if err != nil {
		return invalid(err)
	}
	if err := secrets.CheckValue(value); err != nil {
		return invalidf("secret %s: %v", name, err)
	}
	if rm != nil {
		return g.secretSetRemote(ctx, rm, name, value)
	}
	keys, err := secrets.KeySourceFromEnv(g.getenv)
	if err != nil {
		return err
	}
	newKey := keys.Env == "" && !fileExists(keys.File)
	return g.builtinVault(ctx, true, func(b *secrets.Builtin, _ project.Project) error {
		version, err := b.Set(ctx, store.DefaultNamespace, name, value)
		if err != nil {
			return err
		}
		if newKey && fileExists(keys.File) {
			fmt.Fprintf(g.deps.Stderr, "created the master key %s (mode 0600): every secret stored on this machine is encrypted with it; back it up apart from the projects — without it they cannot be read (docs/secrets.md)\n", keys.File)
		}
		fmt.Fprintf(g.deps.Stdout, "secret %s set (version %d)\n", name, version)
		return nil
	})
}

// readSecretValue reads a value from the file, else from stdin: a
// terminal line typed without echo, or what is piped in, less one
// trailing newline. It reads one byte past the limit, so that an oversize
// value is refused rather than cut.
func (g *globals) readSecretValue(name, fromFile string) (string, error) {
	if fromFile != "" {
		f, err := os.Open(fromFile)
		if err != nil {
			return "", fmt.Errorf("--from-file: %w", err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, secrets.MaxValueBytes+1))
		return string(b), err
	}
	return g.readStdin("value of "+name, secrets.MaxValueBytes+3)
}

// readStdin reads what is secret from stdin: a terminal line typed without
// echo after a prompt naming what, or what is piped in (at most limit
// bytes), less one trailing newline.
func (g *globals) readStdin(what string, limit int64) (string, error) {
	in := g.deps.Stdin
	if in == nil {
		in = os.Stdin
	}
	if f, ok := in.(*os.File); ok && isTerminal(f) {
		fmt.Fprintf(g.deps.Stderr, "%s (not echoed): ", what)
		v, err := readHidden(f)
		fmt.Fprintln(g.deps.Stderr)
		return v, err
	}
	b, err := io.ReadAll(io.LimitReader(in, limit))
	if err != nil {
		return "", fmt.Errorf("read the %s from stdin: %w", what, err)
	}
	v := strings.TrimSuffix(string(b), "\n")
	return strings.TrimSuffix(v, "\r"), nil
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// readHidden reads one line from the terminal f with echo off.
func readHidden(f *os.File) (string, error) {
	b, err := term.ReadPassword(int(f.Fd()))
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return string(b), nil
}

func (g *globals) secretList(ctx context.Context) error {
	rm, err := g.remote("")
	if err != nil {
		return err
	}
	if rm != nil {
		list, err := rm.c.ListSecrets(ctx)
		if err != nil {
			return g.apiErr(err)
		}
		return g.printSecrets(list, fmt.Sprintf("no secrets stored on %s; add one with: routines %s secrets set NAME", rm.where(), rm.selector()))
	}
	return g.builtinVault(ctx, false, func(b *secrets.Builtin, p project.Project) error {
		stored, err := b.List(ctx, store.DefaultNamespace)
		if err != nil {
			return err
		}
		list := make([]api.Secret, 0, len(stored))
		for _, s := range stored {
			list = append(list, api.Secret{Name: s.Name, Version: s.Version, CreatedAt: s.CreatedAt, RotatedAt: s.RotatedAt})
		}
		return g.printSecrets(list, fmt.Sprintf("no secrets stored in project %s; add one with: routines secrets set NAME", p.Dir))
	})
}

// printSecrets prints the secrets of a vault: a table, or a JSON array;
// none is told by empty.
func (g *globals) printSecrets(list []api.Secret, empty string) error {
	if g.output == "json" {
		if list == nil {
			list = []api.Secret{}
		}
		return writeJSON(g.deps.Stdout, list)
	}
	if len(list) == 0 {
		_, err := fmt.Fprintln(g.deps.Stdout, empty)
		return err
	}
	rows := [][]string{{"NAME", "VERSION", "LAST ROTATED (UTC)", "CREATED (UTC)"}}
	for _, s := range list {
		rows = append(rows, []string{s.Name, fmt.Sprint(s.Version), stamp(&s.RotatedAt), stamp(&s.CreatedAt)})
	}
	return table(g.deps.Stdout, rows)
}

func (g *globals) secretRemove(ctx context.Context, name string) error {
	if err := secrets.CheckName(name); err != nil {
		return invalid(err)
	}
	rm, err := g.remote("")
	if err != nil {
		return err
	}
	if rm != nil {
		return g.secretRemoveRemote(ctx, rm, name)
	}
	return g.builtinVault(ctx, false, func(b *secrets.Builtin, p project.Project) error {
		existed, err := b.Delete(ctx, store.DefaultNamespace, name)
		if err != nil {
			return err
		}
		if !existed {
			return invalidf("no secret %s is stored in project %s (routines secrets list shows those that are)", name, p.Dir)
		}
		fmt.Fprintf(g.deps.Stdout, "secret %s removed\n", name)
		return nil
	})
}

func newAuditCmd(g *globals) *cobra.Command {
	var (
		secret string
		since  time.Duration
		limit  int
		actor  string
		d      deployment
	)
	cmd := &cobra.Command{
		Use:   "audit [--since 7d] [--actor NAME]",
		Short: "The audit trail: a server's actions (who pushed, invoked, set secrets…), or the local secrets' log",
		Long: "With a server (--server, $ROUTINES_SERVER or a profile), audit reads its trail of actions: every\n" +
			"state-changing request (push, rollback, invoke, cancel, re-run, replay, event, secret set/list/delete, token\n" +
			"create/revoke, namespace change) with the token's name, role and namespace, the client's address, the\n" +
			"time and the outcome — an admin's, append-only, never a secret's value (docs/teams.md). Without one, it\n" +
			"reads the local project's log of secrets: every resolution, set and removal.",
		Args: argsRange(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if g.remoteNamed(&d) {
				if secret != "" {
					return invalidf("--secret filters the local log of secrets; a server's trail is filtered with --actor")
				}
				q := api.AuditQuery{Actor: actor, Limit: limit}
				if since > 0 {
					q.Since = time.Now().Add(-since)
				}
				return g.auditRemote(cmd.Context(), &d, q)
			}
			if actor != "" {
				return invalidf("--actor filters a server's trail of actions: give --server URL (or ROUTINES_SERVER, or --profile)")
			}
			p := &store.AuditListParams{Secret: secret, Limit: limit}
			if since > 0 {
				p.Since = time.Now().Add(-since)
			}
			return g.withStore(cmd.Context(), func(st store.Store) error {
				return g.listAudit(cmd.Context(), st, p)
			})
		},
	}
	cmd.Flags().StringVar(&secret, "secret", "", "only the records of this secret")
	durationVar(cmd.Flags(), &since, "since", 0, "only records this recent, such as 24h or 7d (default: all)")
	cmd.Flags().IntVar(&limit, "limit", 1000, "at most the newest this many records (0: all)")
	cmd.Flags().StringVar(&actor, "actor", "", "only the actions of this token's name (a server's trail)")
	d.flags(cmd)
	return cmd
}

func (g *globals) listAudit(ctx context.Context, st store.Store, p *store.AuditListParams) error {
	records, err := st.AuditList(ctx, p)
	if err != nil {
		return err
	}
	if g.output == "json" {
		type entry struct {
			Time     time.Time `json:"time"`
			Action   string    `json:"action"`
			Secret   string    `json:"secret"`
			Provider string    `json:"provider"`
			Routine  string    `json:"routine,omitempty"`
			RunID    string    `json:"run_id,omitempty"`
			OK       bool      `json:"ok"`
			Error    string    `json:"error,omitempty"`
		}
		out := make([]entry, 0, len(records))
		for _, r := range records {
			out = append(out, entry{r.Time, r.Action, r.Secret, r.Provider, r.Routine, r.RunID, r.OK, r.Error})
		}
		return writeJSON(g.deps.Stdout, out)
	}
	if len(records) == 0 {
		fmt.Fprintln(g.deps.Stdout, "no audit records")
		return nil
	}
	rows := [][]string{{"TIME (UTC)", "ACTION", "SECRET", "PROVIDER", "ROUTINE", "RUN", "RESULT"}}
	for _, r := range records {
		result := "ok"
		if !r.OK {
			result = "failed: " + r.Error
		}
		rows = append(rows, []string{stamp(&r.Time), r.Action, r.Secret, r.Provider, orDash(r.Routine), orDash(r.RunID), result})
	}
	return table(g.deps.Stdout, rows)
}

// secretResolver builds the resolver of the secrets routines declare: the
// builtin vault on st, the environment, and the providers main adds. With
// a nil st it only validates.
func (g *globals) secretResolver(st store.Store, p project.Project) (*secrets.Resolver, error) {
	keys, err := secrets.KeySourceFromEnv(g.getenv)
	if err != nil {
		return nil, err
	}
	providers := []secrets.Provider{secrets.NewBuiltin(st, keys), secrets.Env{Lookup: g.lookupEnv}}
	g.extraOnce.Do(func() {
		if g.deps.SecretProviders != nil {
			g.extra, g.extraErr = g.deps.SecretProviders(g.getenv)
		}
	})
	if g.extraErr != nil {
		return nil, g.extraErr
	}
	return secrets.NewResolver(secrets.ResolverConfig{Providers: append(providers, g.extra...), Audit: st, Project: p.Dir})
}

// checkSecrets checks the from: of the secrets a routine declares against
// the providers, without the network.
func (g *globals) checkSecrets(r *routine.Routine) error {
	res, err := g.secretResolver(nil, project.Project{})
	if err != nil {
		return err
	}
	return res.Validate(r.Secrets)
}

// load reads and validates a routine file, the references of its secrets
// to their providers included.
func (g *globals) load(path string) (*routine.Routine, error) {
	r, err := spec.Load(path)
	if err != nil {
		return nil, err
	}
	if err := g.checkSecrets(r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// fileExists reports whether path names an existing file.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

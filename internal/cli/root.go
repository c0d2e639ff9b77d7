// Package cli holds the cobra commands of the routines binary. Commands
// write to injected writers, so tests run them in-process and read what a
// user would see; human tables by default, -o json for scripts.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/artifacts"
	"github.com/routines-dev/routines/internal/secrets"
	"github.com/routines-dev/routines/internal/spec"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
	"github.com/routines-dev/routines/internal/trigger"
)

// Exit codes of the routines command.
const (
	ExitOK        = 0   // success; for run-once, the run succeeded
	ExitFailed    = 1   // the run failed, or a command failed
	ExitInvalid   = 2   // invalid routine, bad flags or arguments; nothing ran
	ExitCancelled = 130 // the run was cancelled (Ctrl-C)
)

// Deps is what main gives the commands.
type Deps struct {
	Kinds stepkind.Registry
	// SandboxCheck reports the Landlock ABI the kernel offers, or why there
	// is none; sandbox.Check when nil.
	SandboxCheck func() (int, error)
	// SandboxSupported reports whether this system runs confined
	// processes at all (run steps need Linux); sandbox.Supported when nil.
	SandboxSupported func() error
	// SecretProviders returns the secret providers beyond builtin and env
	// (vault, aws), configured from the environment; none when nil.
	SecretProviders func(getenv func(string) string) ([]secrets.Provider, error)
	// Triggers are the families of trigger kinds a daemon starts;
	// trigger.Builtin() when nil.
	Triggers []trigger.NewSource
	// Stores are the store drivers beyond the embedded SQLite one, which
	// every binary has, by URL scheme (postgres in remote mode).
	Stores store.Drivers
	// Artifacts are the artifact stores of --artifacts beyond local: and
	// postgres, by URL scheme (s3).
	Artifacts artifacts.Drivers
	// Getenv reads the environment; os.LookupEnv when nil.
	Getenv func(string) (string, bool)
	Stdin  io.Reader // os.Stdin when nil
	Stdout io.Writer
	Stderr io.Writer
	// Version is the version main was built with, if any (-ldflags -X);
	// Build is its build info (debug.ReadBuildInfo), which --version
	// reads the module version and VCS revision from.
	Version string
	Build   *debug.BuildInfo
	// Now is the clock of what commands show, such as validate's next
	// firing times, and of what prune judges old; time.Now when nil.
	Now func() time.Time
}

// lookupEnv reads a variable of the environment the commands see.
func (g *globals) lookupEnv(name string) (string, bool) {
	if g.deps.Getenv != nil {
		return g.deps.Getenv(name)
	}
	return os.LookupEnv(name)
}

// openStoreURL opens the store a URL names (store.Drivers.Open): the
// embedded SQLite driver, and those of Deps.Stores.
func (g *globals) openStoreURL(ctx context.Context, u string) (store.Store, error) {
	drivers := store.Drivers{"sqlite": sqlite.OpenURL}
	maps.Copy(drivers, g.deps.Stores)
	return drivers.Open(ctx, u)
}

// getenv is lookupEnv without the found flag.
func (g *globals) getenv(name string) string {
	v, _ := g.lookupEnv(name)
	return v
}

// exitError carries an exit code up to Run.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// invalid marks err as bad input (exit 2).
func invalid(err error) error { return &exitError{code: ExitInvalid, err: err} }

// globals are the flags every command has.
type globals struct {
	deps    Deps
	project string
	output  string
	logger  *slog.Logger
	// allowMissing names sandbox layers run steps may go without where
	// the host lacks them.
	allowMissing []string
	// profile is --profile; selected the profile a command acts on, once
	// read (remote).
	profile, selected string
	// caCert is --ca-cert, the CA certificate servers are checked with.
	caCert string

	// The secret providers of Deps.SecretProviders, made once.
	extraOnce sync.Once
	extra     []secrets.Provider
	extraErr  error
}

// Run executes the command line args and returns the process exit code.
func Run(ctx context.Context, deps Deps, args []string) int {
	g := &globals{deps: deps}
	root := newRoot(g)
	root.SetArgs(markRunRefs(root, goTestFlags(args)))
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if problems := spec.Problems(ee.err); len(problems) > 0 {
			// The problems carry their own positions: no prefix.
			fmt.Fprintf(deps.Stderr, "%v\n%d problem(s); nothing was run\n", ee.err, len(problems))
		} else if ee.err != errSilent {
			fmt.Fprintln(deps.Stderr, "error:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(deps.Stderr, "error:", err)
	if isUsageError(err) {
		return ExitInvalid
	}
	return ExitFailed
}

// goTestFlags lets `routines test` take -run as go test does: the flag
// parser reads a single dash as shorthand letters.
func goTestFlags(args []string) []string {
	if len(args) == 0 || args[0] != "test" {
		return args
	}
	out := slices.Clone(args)
	for i, a := range out {
		if a == "-run" || strings.HasPrefix(a, "-run=") {
			out[i] = "-" + a
		}
	}
	return out
}

// errSilent is an error already reported to the user.
var errSilent = errors.New("reported")

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "routines",
		Short: "Routines turns small manual tasks into routines: a trigger, steps, secrets",
		Long: "Routines runs routine.yaml files on this machine: run-once runs one now, in the foreground;\n" +
			"serve is the daemon that fires their triggers (cron, every, webhooks, files, email, events)\n" +
			"and works the queue. Runs, logs, state and secrets live in the project's .routines/ (SQLite).\n" +
			"With --profile NAME (routines login) the commands that read or act use that server instead.\n" +
			"Help on a command: routines help COMMAND. Docs: " + docsURL,
		Version:       versionString(g.deps.Version, g.deps.Build),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if g.output != "text" && g.output != "json" && !(g.output == "junit" && cmd.Name() == "test") && !(g.output == "html" && cmd.Name() == "report") {
				return invalid(fmt.Errorf("-o %s: write -o text or -o json (and -o junit for test, -o html for report)", g.output))
			}
			g.logger = slog.New(slog.NewTextHandler(g.deps.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			if !cmd.Flags().Changed("allow-missing") {
				if v := g.getenv("ROUTINES_ALLOW_MISSING"); v != "" {
					g.allowMissing = strings.Split(v, ",")
				}
			}
			if err := layerNames(g.allowMissing); err != nil {
				return invalid(err)
			}
			return nil
		},
	}
	root.SetVersionTemplate("{{.Name}} {{.Version}}\n")
	// Before the completion command is made: it keeps the writer it finds.
	root.SetOut(g.deps.Stdout)
	root.SetErr(g.deps.Stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return invalid(err) })
	root.PersistentFlags().StringVar(&g.project, "project", "", "project directory holding .routines/ (default: the nearest one above the routine, the served directory or the current one; env ROUTINES_PROJECT; routines help projects)")
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "text", "output format: text or json")
	root.PersistentFlags().StringVar(&g.profile, "profile", "", "act on the server of this profile (routines login) instead of the local project; env "+profileEnv)
	root.PersistentFlags().StringVar(&g.caCert, "ca-cert", "", "PEM file of the CA whose certificates the server's must chain to, for a server with a private CA (default: the system's CAs; env ROUTINES_CA_CERT; routines login keeps it in the profile)")
	root.PersistentFlags().StringSliceVar(&g.allowMissing, "allow-missing", nil,
		"sandbox layers run steps may go without where this host lacks them: network, memory, pids, cpu (see routines doctor; env ROUTINES_ALLOW_MISSING)")
	root.AddCommand(
		newInitCmd(g),
		newValidateCmd(g),
		newRunOnceCmd(g),
		newRunsCmd(g),
		newShowCmd(g),
		newLogsCmd(g),
		newDLQCmd(g),
		newAlertsCmd(g),
		newSchemaCmd(g),
		newServeCmd(g),
		newServerCmd(g),
		newWorkerCmd(g),
		newPushCmd(g),
		newRevisionsCmd(g),
		newRollbackCmd(g),
		newDiffCmd(g),
		newInvokeCmd(g),
		newCancelCmd(g),
		newRerunCmd(g),
		newEmitCmd(g),
		newSecretsCmd(g),
		newAuditCmd(g),
		newTokensCmd(g),
		newNamespacesCmd(g),
		newClassifyCmd(g),
		newTestCmd(g),
		newDoctorCmd(g),
		newBackupCmd(g),
		newRestoreCmd(g),
		newStatusCmd(g),
		newCostsCmd(g),
		newStatsCmd(g),
		newPruneCmd(g),
		newReportCmd(g),
		newProjectsTopic(),
		newLoginCmd(g), newLogoutCmd(g),
	)
	root.InitDefaultCompletionCmd()
	root.InitDefaultHelpCmd()
	addCompletions(root, g)
	addHelp(root)
	return root
}

// isUsageError reports cobra's own usage errors (unknown command), which
// it does not type.
func isUsageError(err error) bool {
	return strings.HasPrefix(err.Error(), "unknown command")
}

// argsRange checks the number of positional arguments, as bad input.
func argsRange(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			want := fmt.Sprintf("%d", lo)
			if hi > lo {
				want = fmt.Sprintf("%d to %d", lo, hi)
			}
			return invalid(fmt.Errorf("%s takes %s argument(s), got %d; usage: %s", cmd.Name(), want, len(args), cmd.UseLine()))
		}
		return nil
	}
}

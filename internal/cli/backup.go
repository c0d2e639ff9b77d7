package cli

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/project"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

func newBackupCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "backup FILE",
		Short: "Copy the project's store to FILE, consistently, while the daemon runs",
		Long: "backup writes a consistent copy of the project's store (.routines/state.db: runs, logs, state,\n" +
			"the builtin vault's encrypted secrets, audit) to FILE, with its SHA-256 in FILE.sha256, while\n" +
			"routines serve goes on working. It prints the size, checksum, schema version and runs of the copy.\n" +
			"The master key is never in a backup: keep it apart, or the secrets in the backup cannot be read.\n" +
			"Docs: " + docsURL + "/operations.md#backup-and-restore",
		Args: argsRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.localProject("backup", "back the database up with pg_dump")
			if err != nil {
				return err
			}
			if !p.HasStore() {
				return invalidf("nothing to back up in project %s (no %s): pass --project DIR", p.Dir, p.StorePath())
			}
			info, err := sqlite.Backup(cmd.Context(), p.StorePath(), args[0])
			if err != nil {
				return err
			}
			if g.output == "json" {
				return writeJSON(g.deps.Stdout, info)
			}
			w := g.deps.Stdout
			fmt.Fprintf(w, "backed up %s to %s\n", p.StorePath(), info.File)
			printFileInfo(w, info)
			fmt.Fprintf(w, "checksum in %s.sha256 (sha256sum -c reads it in that directory)\n", info.File)
			fmt.Fprintln(w, "the master key is not in the backup: keep it apart, or its secrets cannot be read ("+docsURL+"/operations.md#the-master-key)")
			return nil
		},
	}
}

// printFileInfo writes what a backup holds.
func printFileInfo(w io.Writer, info *sqlite.FileInfo) {
	fmt.Fprintf(w, "size    %s\nsha256  %s\nschema  %d\nruns    %d", byteSize(info.Size), info.SHA256, info.Schema, info.Runs)
	if len(info.RunsByState) > 0 {
		var parts []string
		for _, s := range slices.Sorted(maps.Keys(info.RunsByState)) {
			parts = append(parts, fmt.Sprintf("%s %d", s, info.RunsByState[s]))
		}
		fmt.Fprintf(w, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintln(w)
}

// byteSize writes n bytes for people: 1.5 MiB.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n)/unit, 0
	for ; f >= unit && i < 3; i++ {
		f /= unit
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGT"[i])
}

func newRestoreCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "restore FILE",
		Short: "Put a backup in place of the project's store (the daemon stopped), keeping the old store aside",
		Long: "restore checks FILE — its SHA-256 against FILE.sha256, SQLite's integrity_check, a schema this\n" +
			"binary knows — then moves the project's store aside to .routines/state.db.before-restore-<time>\n" +
			"(with its -wal and -shm) and puts FILE in its place, migrated to this binary's schema.\n" +
			"It refuses while a daemon serves the project: stop it first. Secrets in the backup open only\n" +
			"with the master key they were sealed under.\n" +
			"Docs: " + docsURL + "/operations.md#backup-and-restore",
		Args: argsRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.localProject("restore", "restore the database with pg_restore")
			if err != nil {
				return err
			}
			// Held until the store is in place: no daemon starts on the
			// project meanwhile.
			lock, err := p.LockDaemon()
			var running *project.RunningError
			if errors.As(err, &running) {
				return invalidf("%v; restore replaces the store a daemon has open: stop it first, then restore", err)
			}
			if err != nil {
				return err
			}
			defer lock.Release()
			res, err := sqlite.Restore(cmd.Context(), args[0], p.StorePath(), time.Now())
			if err != nil {
				return err
			}
			// Migrate now, so that a backup of an older schema fails here
			// rather than when the daemon starts.
			st, err := sqlite.Open(cmd.Context(), p.StorePath())
			if err != nil {
				return fmt.Errorf("the backup is in place but does not open: %w", err)
			}
			if err := st.Close(); err != nil {
				return err
			}
			if g.output == "json" {
				return writeJSON(g.deps.Stdout, res)
			}
			w := g.deps.Stdout
			fmt.Fprintf(w, "restored %s into %s (checksum and integrity_check ok)\n", res.File, p.StorePath())
			printFileInfo(w, res.FileInfo)
			if res.Schema < sqlite.LatestSchema() {
				fmt.Fprintf(w, "migrated from schema %d to %d\n", res.Schema, sqlite.LatestSchema())
			}
			if res.Aside != "" {
				fmt.Fprintf(w, "the store that was there is now %s: remove it once the restored one serves you well\n", res.Aside)
			}
			fmt.Fprintln(w, "secrets of the backup open only with the master key they were sealed under ("+docsURL+"/operations.md#the-master-key)")
			return nil
		},
	}
}

// localProject is the project around the current directory, for a
// command of its local store (name), which refuses --profile: a server's
// PostgreSQL is another database's tools' (instead).
func (g *globals) localProject(name, instead string) (project.Project, error) {
	if g.profileName() != "" {
		return project.Project{}, invalidf("%s works on the project's local store, not a server (--profile): for a remote deployment's PostgreSQL, %s", name, instead)
	}
	p, err := g.projectFor(".")
	if err != nil {
		return p, invalid(err)
	}
	return p, nil
}

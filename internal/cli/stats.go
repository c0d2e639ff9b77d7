package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/project"
	"github.com/routines-dev/routines/internal/stats"
	"github.com/routines-dev/routines/internal/store"
)

func newStatsCmd(g *globals) *cobra.Command {
	var routines []string
	var since time.Duration
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Show per routine the runs that ended lately: count, success and error rates, latency, CPU, memory, bytes",
		Long: "stats shows, per routine and for all of them, the runs that ended in the last --since: how many,\n" +
			"the share that succeeded and that failed (failed or dead), average and p95 latency, CPU-seconds,\n" +
			"GB-seconds of memory and bytes transferred. It reads the store's rollups, not the runs, so a month\n" +
			"of a million runs answers at once. With --profile it asks that server (GET /v1/stats); -o json\n" +
			"writes that answer's shape, with p50, queue wait, tokens and the counts by state.",
		Args: argsRange(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if since <= 0 {
				return invalidf("--since %s: want a duration more than 0, such as 24h or 7d", since)
			}
			ctx := cmd.Context()
			out, where, err := g.readStats(ctx, routines, since)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return writeJSON(g.deps.Stdout, out)
			}
			if out.Overall.Invocations == 0 {
				_, err := fmt.Fprintf(g.deps.Stdout, "no runs ended in the last %s in %s\n", humanSince(since), where)
				return err
			}
			return printStats(g.deps.Stdout, out)
		},
	}
	cmd.Flags().StringArrayVar(&routines, "routine", nil, "only this routine (repeat for more)")
	durationVar(cmd.Flags(), &since, "since", 24*time.Hour, "the runs that ended this recently, such as 1h, 24h or 30d")
	return cmd
}

// readStats reads the figures of the runs that ended in the last since:
// from the selected profile's server, else from the project's store.
func (g *globals) readStats(ctx context.Context, routines []string, since time.Duration) (*api.Stats, string, error) {
	rm, err := g.remote("")
	if err != nil {
		return nil, "", err
	}
	if rm != nil {
		out, err := rm.c.Stats(ctx, api.StatsQuery{Routines: routines, Since: since.String()})
		return out, rm.where(), g.apiErr(err)
	}
	var out *api.Stats
	var where string
	err = g.withProject(ctx, func(st store.Store, dir string) error {
		now := g.now().UTC()
		where = dir
		out, err = stats.Read(ctx, st, &store.StatsParams{Routines: routines, Since: now.Add(-since), Until: now})
		return err
	})
	return out, where, err
}

// printStats prints the figures of each routine, then of all of them.
func printStats(w io.Writer, s *api.Stats) error {
	rows := [][]string{{"ROUTINE", "RUNS", "OK", "ERRORS", "AVG", "P95", "CPU-S", "MEM GB-S", "BYTES"}}
	add := func(name string, m *api.Summary) {
		rows = append(rows, []string{name, fmt.Sprint(m.Invocations), percent(m.SuccessRate), percent(m.ErrorRate),
			seconds(m.LatencyAvgSeconds), seconds(m.LatencyP95Seconds), fmt.Sprintf("%.1f", m.CPUSeconds),
			fmt.Sprintf("%.2f", m.GBSeconds), bytesText(m.BytesSent + m.BytesReceived)})
	}
	for i := range s.Routines {
		add(s.Routines[i].Routine, &s.Routines[i].Summary)
	}
	if len(s.Routines) > 1 {
		add("(all)", &s.Overall.Summary)
	}
	return table(w, rows)
}

func percent(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) }

func seconds(s float64) string {
	if s == 0 {
		return "-"
	}
	return humanDuration(time.Duration(s * float64(time.Second)))
}

// bytesText shows a number of bytes in powers of 1024.
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// humanSince shows a --since as it would be written: 24h, 7d, 90d.
func humanSince(d time.Duration) string {
	day := 24 * time.Hour
	if d >= day && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	return strings.TrimSuffix(strings.TrimSuffix(d.String(), "0s"), "0m")
}

func newReportCmd(g *globals) *cobra.Command {
	var since time.Duration
	var out string
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Report the value of the automation: runs, hours saved, error trend, time to recovery, per routine and tag",
		Long: "report shows, for the runs that ended in the last --since (90 days by default), per routine, per tag\n" +
			"and in total: the automated task volume (runs), the hours saved (succeeded runs × the\n" +
			"value.minutes_saved_per_run of routine.yaml), the error rate and its trend, the incidents (failure\n" +
			"streaks) with their mean time to recovery (first failure to the next success), and the dead-lettered\n" +
			"runs. -o html writes one self-contained page a manager can open or print; -o json the shape of\n" +
			"GET /v1/report; --out FILE writes to FILE instead of stdout. With --profile it asks that server.",
		Args: argsRange(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if since <= 0 {
				return invalidf("--since %s: want a duration more than 0, such as 30d or 90d", since)
			}
			rep, err := g.readReport(cmd.Context(), since)
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			switch g.output {
			case "json":
				err = writeJSON(&buf, rep)
			case "html":
				err = stats.WriteHTML(&buf, rep)
			default:
				err = printReport(&buf, rep)
			}
			if err != nil {
				return err
			}
			if out == "" {
				_, err := g.deps.Stdout.Write(buf.Bytes())
				return err
			}
			if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
				return invalidf("--out %s: %v", out, err)
			}
			fmt.Fprintf(g.deps.Stderr, "report written to %s\n", out)
			return nil
		},
	}
	durationVar(cmd.Flags(), &since, "since", 90*24*time.Hour, "the runs that ended this recently, such as 30d or 90d")
	cmd.Flags().StringVar(&out, "out", "", "write the report to this file instead of stdout")
	return cmd
}

// readReport computes the value report of the runs that ended in the last
// since: on the selected profile's server, else from the project's store
// and the value and tags of its routine files.
func (g *globals) readReport(ctx context.Context, since time.Duration) (*api.Report, error) {
	rm, err := g.remote("")
	if err != nil {
		return nil, err
	}
	if rm != nil {
		rep, err := rm.c.Report(ctx, api.StatsQuery{Since: since.String()})
		return rep, g.apiErr(err)
	}
	var rep *api.Report
	err = g.withProject(ctx, func(st store.Store, dir string) error {
		routines, err := project.Discover(dir, g.deps.Stderr, g.checkSecrets)
		if err != nil {
			return err
		}
		now := g.now().UTC()
		rep, err = stats.BuildReport(ctx, st, routines, now.Add(-since), now, now)
		return err
	})
	return rep, err
}

// printReport prints the report as tables: the routines and all of them
// together, then the tags.
func printReport(w io.Writer, rep *api.Report) error {
	fmt.Fprintf(w, "runs that ended from %s to %s (UTC)\n\n", rep.Since.Format("2006-01-02 15:04"), rep.Until.Format("2006-01-02 15:04"))
	head := []string{"RUNS", "SUCCEEDED", "ERRORS", "TREND", "HOURS SAVED", "INCIDENTS", "MTTR", "DEAD"}
	row := func(name string, r *api.ReportRow) []string {
		incidents := fmt.Sprint(r.Incidents)
		if r.OpenIncidents > 0 {
			incidents += fmt.Sprintf(" (%d open)", r.OpenIncidents)
		}
		mttr := "-"
		if r.MTTRSeconds != nil {
			mttr = humanDuration(time.Duration(*r.MTTRSeconds * float64(time.Second)))
		}
		saved := "-" // no value declared
		if r.MinutesSavedPerRun > 0 || r.HoursSaved > 0 {
			saved = fmt.Sprintf("%.1f", r.HoursSaved)
		}
		return []string{name, fmt.Sprint(r.Runs), fmt.Sprint(r.Succeeded), percent(r.ErrorRate), r.ErrorTrend.Direction,
			saved, incidents, mttr, fmt.Sprint(r.Dead)}
	}
	rows := [][]string{append([]string{"ROUTINE"}, head...)}
	for i := range rep.Routines {
		rows = append(rows, row(rep.Routines[i].Name, &rep.Routines[i]))
	}
	rows = append(rows, row("(all)", &rep.Total))
	if err := table(w, rows); err != nil {
		return err
	}
	if len(rep.Tags) == 0 {
		return nil
	}
	rows = [][]string{append([]string{"TAG"}, head...)}
	for i := range rep.Tags {
		rows = append(rows, row(rep.Tags[i].Name, &rep.Tags[i]))
	}
	fmt.Fprintln(w)
	return table(w, rows)
}

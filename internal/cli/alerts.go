package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

func newAlertsCmd(g *globals) *cobra.Command {
	var (
		p     store.AlertListParams
		since time.Duration
	)
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "List the firings and clearings of the routines' alerts, newest first, and how their notifications went",
		Long: "alerts lists what the alerts of routine.yaml (alerts:) recorded: each time one started firing or\n" +
			"cleared, the value of its metric, and whether Slack and the webhook took the notification. It reads\n" +
			"the project's store, or the server of the selected profile. Docs: " + docsURL + "/observability.md#alerts",
		Args: argsRange(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if p.Limit < 1 {
				return invalidf("--limit %d: want at least 1", p.Limit)
			}
			if since > 0 {
				p.Since = time.Now().Add(-since)
			}
			list, where, err := g.alertRecords(cmd.Context(), &p)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return writeJSON(g.deps.Stdout, api.NewAlertRecords(list))
			}
			if len(list) == 0 {
				_, err := fmt.Fprintf(g.deps.Stdout, "no alert fired in %s%s\n", where, sinceText(since))
				return err
			}
			rows := [][]string{{"TIME", "ROUTINE", "ALERT", "STATE", "VALUE", "OVER", "NOTIFIED"}}
			for _, rec := range list {
				state := rec.State
				if state == routine.AlertOK {
					state = "cleared"
				}
				value := rec.ValueText() + " (" + rec.When + ")"
				rows = append(rows, []string{stamp(&rec.At), rec.Routine, truncate(rec.Alert, 40), state, value, rec.Over.String(), notified(rec)})
			}
			return table(g.deps.Stdout, rows)
		},
	}
	cmd.Flags().StringVar(&p.Routine, "routine", "", "only the alerts of this routine")
	durationVar(cmd.Flags(), &since, "since", 0, "only what happened this recently, such as 24h or 7d (default: all)")
	cmd.Flags().IntVar(&p.Limit, "limit", api.DefaultAlertLimit, "at most this many records")
	return cmd
}

// alertRecords reads the records p selects from the server of the
// selected profile, else from the project's store, and names where.
func (g *globals) alertRecords(ctx context.Context, p *store.AlertListParams) (list []*routine.AlertRecord, where string, err error) {
	rm, err := g.remote("")
	if err != nil {
		return nil, "", err
	}
	if rm != nil {
		list, err = rm.c.ListAlerts(ctx, api.AlertQuery{Routine: p.Routine, Since: p.Since, Limit: p.Limit})
		return list, rm.where(), g.apiErr(err)
	}
	err = g.withProject(ctx, func(st store.Store, dir string) error {
		where = dir
		list, err = st.AlertList(ctx, p)
		return err
	})
	return list, where, err
}

// sinceText says which span a list covers: "" for all time.
func sinceText(since time.Duration) string {
	if since <= 0 {
		return ""
	}
	return " in the last " + routine.Duration(since).String()
}

// notified says how a record's notifications went: each target, ok or
// its last error, and the tries.
func notified(rec *routine.AlertRecord) string {
	if len(rec.Deliveries) == 0 {
		return "-"
	}
	var parts []string
	for _, d := range rec.Deliveries {
		switch {
		case d.OK:
			parts = append(parts, d.Target+" ok")
		case d.Error == "":
			parts = append(parts, d.Target+" pending")
		default:
			parts = append(parts, d.Target+" failed: "+truncate(d.Error, 60))
		}
	}
	s := strings.Join(parts, ", ")
	if rec.Attempts > 1 {
		s += fmt.Sprintf(" (%d tries)", rec.Attempts)
	}
	if !rec.Done && rec.Attempts > 0 {
		s += ", trying again"
	}
	return s
}

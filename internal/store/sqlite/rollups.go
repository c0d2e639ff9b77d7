package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// The rollups a transaction's run ends add to (0011_run_ends.sql): the
// triggers of runs append a row to run_ends per run that ends; before the
// transaction commits, foldRunEnds sums them per rollup row in Go and
// writes each rollup row it touches once. Under load a group commit holds
// a hundred run ends of a few routines: a few upserts instead of two
// rewrites of a JSON histogram per run.
const (
	runEndsSQL         = `SELECT routine, state, ended_at, duration, queue_wait, cpu_ms, usage, max_rss_kb FROM run_ends`
	runEndsClearSQL    = `DELETE FROM run_ends`
	rollupTokensAddSQL = `INSERT INTO rollup_tokens (width, start, routine, model, input, output)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT DO UPDATE SET input = input + excluded.input, output = output + excluded.output`
	rollupWidthsSQL = `SELECT width FROM rollup_widths ORDER BY width`
)

// rollupSums are the columns of rollups that sum integers, in the order
// of store.RollupRow's numbers (rollupNumbers): the counts by state, the
// sums, then a column per bucket of each histogram.
var rollupSums = func() []string {
	cols := []string{"succeeded", "failed", "dead", "cancelled", "duration_sum", "queue_wait_sum",
		"cpu_ms", "bytes_sent", "bytes_received"}
	for _, h := range []string{"duration", "queue_wait"} {
		for i := range len(store.HistogramBounds) + 1 {
			cols = append(cols, h+"_"+strconv.Itoa(i))
		}
	}
	return cols
}()

// rollupAddSQL adds a sum of run ends (gb_seconds, then rollupSums, and
// the peak memory, kept as a maximum) to a rollup row, creating it.
var rollupAddSQL = func() string {
	cols := append([]string{"gb_seconds"}, rollupSums...)
	set := make([]string, len(cols))
	for i, c := range cols {
		set[i] = c + " = " + c + " + excluded." + c
	}
	return "INSERT INTO rollups (width, start, routine, " + strings.Join(cols, ", ") + ", max_rss_kb)" +
		" VALUES (?, ?, ?" + strings.Repeat(", ?", len(cols)+1) + ")" +
		" ON CONFLICT DO UPDATE SET " + strings.Join(set, ", ") +
		", max_rss_kb = max(max_rss_kb, excluded.max_rss_kb)"
}()

// rollupKey names a rollup row: its width and start in seconds and
// microseconds, as stored.
type rollupKey struct {
	width, start int64
	routine      string
}

// rollupSum is what the run ends of a transaction add to one rollup row.
type rollupSum struct {
	row    store.RollupRow
	tokens map[string]routine.Tokens
}

// runEnd is a row of run_ends.
type runEnd struct {
	routine, state      string
	endedAt, cpuMs      int64
	maxRSSKB            int64
	duration, queueWait sql.NullInt64
	usage               sql.NullString
}

// foldRunEnds sums the rows of run_ends into the rollups of every width
// and empties run_ends, within tx.
func (s *Store) foldRunEnds(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.StmtContext(ctx, s.runEnds).QueryContext(ctx)
	if err != nil {
		return fmt.Errorf("read run ends: %w", err)
	}
	var sums map[rollupKey]*rollupSum
	for rows.Next() {
		var e runEnd
		if err := rows.Scan(&e.routine, &e.state, &e.endedAt, &e.duration, &e.queueWait, &e.cpuMs, &e.usage, &e.maxRSSKB); err != nil {
			_ = rows.Close()
			return fmt.Errorf("read run ends: %w", err)
		}
		if sums == nil {
			sums = map[rollupKey]*rollupSum{}
		}
		if err := s.addRunEnd(sums, &e); err != nil {
			_ = rows.Close()
			return err
		}
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("read run ends: %w", err)
	}
	if sums == nil {
		return nil
	}
	for k, sum := range sums {
		if err := s.writeRollup(ctx, tx, k, sum); err != nil {
			return fmt.Errorf("rollup of %s at %d: %w", k.routine, k.start, err)
		}
	}
	if _, err := tx.StmtContext(ctx, s.runEndsClear).ExecContext(ctx); err != nil {
		return fmt.Errorf("clear run ends: %w", err)
	}
	return nil
}

// addRunEnd adds a run end to the sums of its rollup row in every width.
func (s *Store) addRunEnd(sums map[rollupKey]*rollupSum, e *runEnd) error {
	var usage routine.Usage
	if e.usage.Valid {
		if err := json.Unmarshal([]byte(e.usage.String), &usage); err != nil {
			return fmt.Errorf("usage of a run of %s: %w", e.routine, err)
		}
	}
	for _, width := range s.rollupWidths {
		k := rollupKey{width: width, start: e.endedAt - e.endedAt%(width*1e6), routine: e.routine}
		sum := sums[k]
		if sum == nil {
			sum = &rollupSum{row: newRollupRow()}
			sums[k] = sum
		}
		r := &sum.row
		switch routine.State(e.state) {
		case routine.StateSucceeded:
			r.Succeeded++
		case routine.StateFailed:
			r.Failed++
		case routine.StateDead:
			r.Dead++
		case routine.StateCancelled:
			r.Cancelled++
		}
		if e.duration.Valid {
			r.Duration[bucket(e.duration.Int64)]++
			r.DurationSumUs += e.duration.Int64
		}
		if e.queueWait.Valid {
			r.QueueWait[bucket(e.queueWait.Int64)]++
			r.QueueWaitSumUs += e.queueWait.Int64
		}
		r.CPUMs += e.cpuMs
		r.MaxRSSKB = max(r.MaxRSSKB, e.maxRSSKB)
		r.GBSeconds += usage.GBSeconds
		r.BytesSent += usage.BytesSent
		r.BytesReceived += usage.BytesReceived
		for model, t := range usage.Tokens {
			if sum.tokens == nil {
				sum.tokens = map[string]routine.Tokens{}
			}
			acc := sum.tokens[model]
			acc.Input += t.Input
			acc.Output += t.Output
			sum.tokens[model] = acc
		}
	}
	return nil
}

// bucket is the index of the histogram bucket of a duration in
// microseconds: the number of bounds below it.
func bucket(us int64) int {
	i, _ := slices.BinarySearch(store.HistogramBounds, time.Duration(us)*time.Microsecond)
	return i
}

// writeRollup adds sum to the rollup row k.
func (s *Store) writeRollup(ctx context.Context, tx *sql.Tx, k rollupKey, sum *rollupSum) error {
	args := []any{k.width, k.start, k.routine, sum.row.GBSeconds}
	for _, n := range rollupNumbers(&sum.row) {
		args = append(args, *n)
	}
	args = append(args, sum.row.MaxRSSKB)
	if _, err := tx.StmtContext(ctx, s.rollupAdd).ExecContext(ctx, args...); err != nil {
		return err
	}
	for model, t := range sum.tokens {
		if _, err := tx.StmtContext(ctx, s.rollupTokensAdd).ExecContext(ctx,
			k.width, k.start, k.routine, model, t.Input, t.Output); err != nil {
			return fmt.Errorf("tokens of %s: %w", model, err)
		}
	}
	return nil
}

// readRollupWidths reads the widths the rollups are kept in, in seconds.
func readRollupWidths(ctx context.Context, db *sql.DB) ([]int64, error) {
	rows, err := db.QueryContext(ctx, rollupWidthsSQL)
	if err != nil {
		return nil, fmt.Errorf("read rollup widths: %w", err)
	}
	defer rows.Close()
	var widths []int64
	for rows.Next() {
		var w int64
		if err := rows.Scan(&w); err != nil {
			return nil, fmt.Errorf("read rollup widths: %w", err)
		}
		widths = append(widths, w)
	}
	return widths, rows.Err()
}

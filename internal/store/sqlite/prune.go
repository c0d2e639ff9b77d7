package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"

	"github.com/routines-dev/routines/internal/store"
)

// Retention deletes in batches through the group commit, each a walk of
// an index of 0012_retention.sql: runs_ended for runs and their logs, the
// primary keys of the rollups, the time index of an audit table.
const (
	// prunableEnded are the final runs retention deletes by their end,
	// as runs_ended lists them: the condition must be written as the
	// index's own for SQLite to use it.
	prunableEnded = `state IN ('succeeded', 'failed', 'cancelled') AND finished_at IS NOT NULL`
	// replayed is a dead run that was replayed.
	replayed = `state = 'dead' AND id IN (SELECT replay_of FROM runs WHERE replay_of <> '')`
	// dedupeClosed keeps the runs that later runs may still fold into
	// (?2: now).
	dedupeClosed = `(dedupe_until IS NULL OR dedupe_until <= ?2)`

	// ?1: before, ?2: now, ?3: limit.
	endedBeforeSQL = `SELECT id FROM runs INDEXED BY runs_ended
		WHERE ` + prunableEnded + ` AND finished_at < ?1 AND ` + dedupeClosed + `
		ORDER BY finished_at, id LIMIT ?3`
	replayedBeforeSQL = `SELECT id FROM runs WHERE ` + replayed + ` AND finished_at < ?1 AND ` + dedupeClosed + ` LIMIT ?3`
	deadSQL           = `SELECT id FROM runs WHERE state = 'dead' AND ` + dedupeClosed + ` LIMIT ?3`

	// routineNamesSQL lists the routines that have runs, one index seek
	// each rather than a walk of every run.
	routineNamesSQL = `WITH RECURSIVE names(name) AS (
			SELECT (SELECT min(routine) FROM runs)
			UNION ALL
			SELECT (SELECT min(routine) FROM runs WHERE routine > name) FROM names WHERE name IS NOT NULL)
		SELECT name FROM names WHERE name IS NOT NULL`
	// oldestKeptSQL is the oldest of a routine's ?2 newest runs.
	oldestKeptSQL = `SELECT queued_at, id FROM runs WHERE routine = ?1 ORDER BY queued_at DESC, id DESC LIMIT 1 OFFSET ?2`
	// olderThanKeptSQL are the routine's (?4) runs queued before its
	// oldest kept one (?1, ?5).
	olderThanKeptSQL = `SELECT id FROM runs WHERE routine = ?4 AND (queued_at, id) < (?1, ?5)
		AND (state IN ('succeeded', 'failed', 'cancelled') OR ` + replayed + `) AND ` + dedupeClosed + `
		ORDER BY queued_at, id LIMIT ?3`

	// logMarkSQL is how far the pruning of logs got, in runs_ended order.
	logMarkSQL    = `SELECT at, id FROM retention_marks WHERE kind = 'logs'`
	logMarkSetSQL = `INSERT INTO retention_marks (kind, at, id) VALUES ('logs', ?, ?)
		ON CONFLICT (kind) DO UPDATE SET at = excluded.at, id = excluded.id`
	// logRunsSQL are the runs after the mark (?1, ?2) that ended before ?3.
	logRunsSQL = `SELECT id, finished_at FROM runs INDEXED BY runs_ended
		WHERE ` + prunableEnded + ` AND (finished_at, id) > (?1, ?2) AND finished_at < ?3
		ORDER BY finished_at, id LIMIT ?4`
	logDeleteSQL = `DELETE FROM logs WHERE run_id = ?1 AND seq IN (SELECT seq FROM logs WHERE run_id = ?1 ORDER BY seq LIMIT ?2)`
	logCountSQL  = `SELECT count(*) FROM logs WHERE run_id IN (SELECT id FROM runs INDEXED BY runs_ended
		WHERE ` + prunableEnded + ` AND (finished_at, id) > (?1, ?2) AND finished_at < ?3 AND finished_at >= ?4)`
)

// auditTables are the audit trails retention prunes by age: rowid tables
// with an index on their time column. Another trail is one more entry.
// horizon, when set, is run first: the trail of actions is append-only
// but for the records older than its horizon (0018_audit_horizon.sql).
var auditTables = []struct{ table, time, horizon string }{
	{"secret_audit", "time", ""},
	{"audit_log", "time", `UPDATE audit_log_horizon SET before = max(before, ?1)`},
}

// rollupTables hold the rollups of a width, keyed (width, start, …).
var rollupTables = []string{"rollups", "rollup_tokens"}

// Prune deletes up to p.Limit rows of p.Kind in one transaction.
func (s *Store) Prune(ctx context.Context, p *store.PruneParams) (*store.Pruned, error) {
	limit := int64(p.Limit)
	if limit <= 0 {
		limit = store.DefaultPruneLimit
	}
	var bounds []keptBound
	if p.Kind == store.PruneRunsOverCount {
		var err error
		if bounds, err = s.keptBounds(ctx, p.Keep); err != nil {
			return nil, fmt.Errorf("prune %s: %w", p.Kind, err)
		}
	}
	var out *store.Pruned
	err := s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		out = &store.Pruned{}
		before, now := p.Before.UnixMicro(), p.Now.UnixMicro()
		switch p.Kind {
		case store.PruneRuns:
			return deleteRuns(ctx, tx, out, limit, []string{endedBeforeSQL, replayedBeforeSQL}, before, now)
		case store.PruneDeadLetters:
			return deleteRuns(ctx, tx, out, limit, []string{deadSQL}, before, now)
		case store.PruneRunsOverCount:
			for _, b := range bounds {
				if out.More {
					break
				}
				if err := deleteRuns(ctx, tx, out, limit, []string{olderThanKeptSQL}, b.queuedAt, now, b.routine, b.id); err != nil {
					return err
				}
			}
			return nil
		case store.PruneLogs:
			return deleteLogs(ctx, tx, out, limit, before)
		case store.PruneAudit:
			for _, t := range auditTables {
				if out.More {
					break
				}
				if t.horizon != "" {
					if _, err := tx.ExecContext(ctx, t.horizon, before); err != nil {
						return err
					}
				}
				q := `DELETE FROM ` + t.table + ` WHERE rowid IN (SELECT rowid FROM ` + t.table + ` WHERE ` + t.time + ` < ?1 ORDER BY ` + t.time + ` LIMIT ?2)`
				if err := deleteRows(ctx, tx, out, limit, q, before); err != nil {
					return err
				}
			}
			return nil
		case store.PruneRollupMinutes, store.PruneRollupHours:
			for _, t := range rollupTables {
				q := `DELETE FROM ` + t + ` WHERE (width, start, routine) IN (SELECT width, start, routine FROM ` + t +
					` WHERE width = ` + rollupWidth(p.Kind) + ` AND start < ?1 ORDER BY start LIMIT ?2)`
				if t == "rollup_tokens" {
					q = `DELETE FROM ` + t + ` WHERE (width, start, routine, model) IN (SELECT width, start, routine, model FROM ` + t +
						` WHERE width = ` + rollupWidth(p.Kind) + ` AND start < ?1 ORDER BY start LIMIT ?2)`
				}
				if err := deleteRows(ctx, tx, out, limit, q, before); err != nil {
					return err
				}
			}
			return nil
		}
		return fmt.Errorf("unknown kind %q", p.Kind)
	})
	if err != nil {
		return nil, fmt.Errorf("prune %s: %w", p.Kind, err)
	}
	return out, nil
}

// rollupWidth is the width, in seconds, of the rollups of a kind.
func rollupWidth(k store.PruneKind) string {
	if k == store.PruneRollupMinutes {
		return strconv.Itoa(int(store.RollupMinute.Seconds()))
	}
	return strconv.Itoa(int(store.RollupHour.Seconds()))
}

// deleteRuns deletes the runs each query selects (?1: before, ?2: now,
// ?3: the room left in the batch, then extra), until the batch is full.
// Their steps and logs go by cascade, their tags by runs_untag.
func deleteRuns(ctx context.Context, tx *sql.Tx, out *store.Pruned, limit int64, queries []string, before, now int64, extra ...any) error {
	for _, q := range queries {
		room := limit - out.Rows
		if room <= 0 {
			break
		}
		args := append([]any{before, now, room}, extra...)
		rows, err := tx.QueryContext(ctx, `DELETE FROM runs WHERE id IN (`+q+`) RETURNING id`, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			out.RunIDs = append(out.RunIDs, id)
			out.Rows++
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
	}
	out.More = out.Rows >= limit
	return nil
}

// deleteRows runs a DELETE of query (?1: before, ?2: the room left in the
// batch) and counts what it deleted.
func deleteRows(ctx context.Context, tx *sql.Tx, out *store.Pruned, limit int64, query string, before int64) error {
	room := limit - out.Rows
	if room <= 0 {
		out.More = true
		return nil
	}
	res, err := tx.ExecContext(ctx, query, before, room)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	out.Rows += n
	out.More = out.Rows >= limit
	return nil
}

// deleteLogs deletes the lines of the runs that ended before before, from
// where the last pass stopped: at most limit lines, of at most limit runs
// (each one probed costs a seek even when its lines are gone already).
func deleteLogs(ctx context.Context, tx *sql.Tx, out *store.Pruned, limit, before int64) error {
	var markAt int64
	var markID string
	if err := tx.QueryRowContext(ctx, logMarkSQL).Scan(&markAt, &markID); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	type ended struct {
		id string
		at int64
	}
	var runs []ended
	rows, err := tx.QueryContext(ctx, logRunsSQL, markAt, markID, before, limit)
	if err != nil {
		return err
	}
	for rows.Next() {
		var e ended
		if err := rows.Scan(&e.id, &e.at); err != nil {
			rows.Close()
			return err
		}
		runs = append(runs, e)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	done := 0
	for _, r := range runs {
		room := limit - out.Rows
		res, err := tx.ExecContext(ctx, logDeleteSQL, r.id, room)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		out.Rows += n
		if n == room { // the batch is full: the run may have more lines
			break
		}
		done++
	}
	out.More = done < len(runs) || int64(len(runs)) == limit
	if done == 0 {
		return nil
	}
	last := runs[done-1]
	_, err = tx.ExecContext(ctx, logMarkSetSQL, last.at, last.id)
	return err
}

// keptBound is the oldest run a routine keeps under a count.
type keptBound struct {
	routine  string
	queuedAt int64
	id       string
}

// keptBounds finds, on the readers, the oldest of each routine's keep
// newest runs: a walk of keep index entries per routine, which would
// hold the writer too long in the batch's transaction.
func (s *Store) keptBounds(ctx context.Context, keep int) ([]keptBound, error) {
	if keep <= 0 {
		return nil, errors.New("keep must be more than 0")
	}
	names, err := s.routineNames(ctx)
	if err != nil {
		return nil, err
	}
	var bounds []keptBound
	for _, name := range names {
		b := keptBound{routine: name}
		err := s.r.QueryRowContext(ctx, oldestKeptSQL, name, keep-1).Scan(&b.queuedAt, &b.id)
		switch {
		case errors.Is(err, sql.ErrNoRows): // fewer runs than keep
		case err != nil:
			return nil, err
		default:
			bounds = append(bounds, b)
		}
	}
	return bounds, nil
}

func (s *Store) routineNames(ctx context.Context) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, routineNamesSQL)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// PruneCount counts what Prune would delete of p.Kind, on the readers.
func (s *Store) PruneCount(ctx context.Context, p *store.PruneParams) (int64, error) {
	n, err := s.pruneCount(ctx, p)
	if err != nil {
		return 0, fmt.Errorf("count %s to prune: %w", p.Kind, err)
	}
	return n, nil
}

func (s *Store) pruneCount(ctx context.Context, p *store.PruneParams) (int64, error) {
	before, now := p.Before.UnixMicro(), p.Now.UnixMicro()
	count := func(query string, args ...any) (int64, error) {
		var n int64
		err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM (`+query+`)`, args...).Scan(&n)
		return n, err
	}
	// A limit of -1 is none.
	switch p.Kind {
	case store.PruneRuns:
		a, err := count(endedBeforeSQL, before, now, -1)
		if err != nil {
			return 0, err
		}
		b, err := count(replayedBeforeSQL, before, now, -1)
		return a + b, err
	case store.PruneDeadLetters:
		return count(deadSQL, before, now, -1)
	case store.PruneRunsOverCount:
		bounds, err := s.keptBounds(ctx, p.Keep)
		if err != nil {
			return 0, err
		}
		var total int64
		for _, b := range bounds {
			n, err := count(olderThanKeptSQL, b.queuedAt, now, -1, b.routine, b.id)
			if err != nil {
				return 0, err
			}
			total += n
		}
		return total, nil
	case store.PruneLogs:
		var markAt int64
		var markID string
		if err := s.r.QueryRowContext(ctx, logMarkSQL).Scan(&markAt, &markID); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return 0, err
		}
		var n int64
		err := s.r.QueryRowContext(ctx, logCountSQL, markAt, markID, before, p.Since.UnixMicro()).Scan(&n)
		return n, err
	case store.PruneAudit:
		var total int64
		for _, t := range auditTables {
			n, err := count(`SELECT 1 FROM `+t.table+` WHERE `+t.time+` < ?`, before)
			if err != nil {
				return 0, err
			}
			total += n
		}
		return total, nil
	case store.PruneRollupMinutes, store.PruneRollupHours:
		var total int64
		for _, t := range rollupTables {
			n, err := count(`SELECT 1 FROM `+t+` WHERE width = `+rollupWidth(p.Kind)+` AND start < ?`, before)
			if err != nil {
				return 0, err
			}
			total += n
		}
		return total, nil
	}
	return 0, fmt.Errorf("unknown kind %q", p.Kind)
}

// Vacuum gives up to pages free pages back to the file system, in a
// transaction of the group commit, when the store is in incremental
// vacuum mode (auto_vacuum = INCREMENTAL).
func (s *Store) Vacuum(ctx context.Context, pages int) (*store.VacuumStatus, error) {
	st := &store.VacuumStatus{}
	err := s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var mode int
		if err := tx.QueryRowContext(ctx, "PRAGMA auto_vacuum").Scan(&mode); err != nil {
			return err
		}
		st.Incremental = mode == autoVacuumIncremental
		if st.Incremental && pages > 0 {
			// The pragma frees a page per step: read it to its end.
			rows, err := tx.QueryContext(ctx, "PRAGMA incremental_vacuum("+strconv.Itoa(pages)+")")
			if err != nil {
				return err
			}
			for rows.Next() {
			}
			if err := errors.Join(rows.Err(), rows.Close()); err != nil {
				return err
			}
		}
		if err := tx.QueryRowContext(ctx, "PRAGMA freelist_count").Scan(&st.FreePages); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, "PRAGMA page_size").Scan(&st.PageSize)
	})
	if err != nil {
		return nil, fmt.Errorf("vacuum: %w", err)
	}
	return st, nil
}

// autoVacuumIncremental is PRAGMA auto_vacuum's INCREMENTAL.
const autoVacuumIncremental = 2

// Compact rewrites the store with VACUUM in incremental vacuum mode. It
// waits for the writer connection, so it runs between two batches of the
// group commit, and holds it until the copy is done.
func (s *Store) Compact(ctx context.Context) error {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	defer conn.Close()
	for _, q := range []string{"PRAGMA auto_vacuum = INCREMENTAL", "VACUUM"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("compact: %s: %w", q, err)
		}
	}
	return nil
}

var _ store.Pruner = (*Store)(nil)

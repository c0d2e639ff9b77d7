package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// logChunk is how many lines one prepared multi-row INSERT stores: per
// line, one statement for many rows costs two thirds of one per row.
const logChunk = 50

const (
	logInsertSQL = `INSERT INTO logs (run_id, seq, step, time, stream, text) VALUES (?, ?, ?, ?, ?, ?)`
	// ?3 = '' selects every step; LIMIT -1 is no limit.
	logListSQL = `SELECT run_id, seq, step, time, stream, text FROM logs
		WHERE run_id = ?1 AND seq > ?2 AND (?3 = '' OR step = ?3)
		ORDER BY seq LIMIT ?4`
)

var logInsertChunkSQL = logInsertSQL + strings.Repeat(", (?, ?, ?, ?, ?, ?)", logChunk-1)

// LogAppend stores log lines in one transaction: all of them or, on error,
// none. A Seq already taken in its run wraps routine.ErrConflict; a line of
// an unknown run wraps routine.ErrNotFound.
func (s *Store) LogAppend(ctx context.Context, lines []routine.LogLine) error {
	if len(lines) == 0 {
		return nil
	}
	if err := s.logAppend(ctx, lines); err != nil {
		return fmt.Errorf("append log: %w", err)
	}
	return nil
}

func (s *Store) logAppend(ctx context.Context, lines []routine.LogLine) error {
	return s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return s.insertLogs(ctx, tx, lines)
	})
}

// insertLogs stores lines within tx.
func (s *Store) insertLogs(ctx context.Context, tx *sql.Tx, lines []routine.LogLine) error {
	one := tx.StmtContext(ctx, s.logInsert)
	chunk := tx.StmtContext(ctx, s.logInsertChunk)
	// A statement run with a context that can end costs the driver a
	// goroutine to watch it; a check per statement serves as well.
	nc := context.WithoutCancel(ctx)
	args := make([]any, 0, 6*logChunk)
	for i, n := 0, 0; i < len(lines); i += n {
		if err := ctx.Err(); err != nil {
			return err
		}
		ins := one
		n = 1
		if len(lines)-i >= logChunk {
			ins, n = chunk, logChunk
		}
		args = args[:0]
		for _, l := range lines[i : i+n] {
			// Text may be any bytes: SQLite stores a TEXT value as given
			// without checking that it is UTF-8, and NUL bytes survive
			// because the driver binds it with its length.
			args = append(args, l.RunID, l.Seq, l.Step, l.Time.UnixMicro(), string(l.Stream), l.Text)
		}
		if _, err := ins.ExecContext(nc, args...); err != nil {
			which := fmt.Sprintf("run %s seq %d", lines[i].RunID, lines[i].Seq)
			if n > 1 {
				which = fmt.Sprintf("one of lines %d to %d", i+1, i+n)
			}
			switch constraint(err) {
			case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
				return fmt.Errorf("%s: seq taken: %w", which, routine.ErrConflict)
			case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
				return fmt.Errorf("%s: run: %w", which, routine.ErrNotFound)
			}
			return fmt.Errorf("%s: %w", which, err)
		}
	}
	return nil
}

// LogList returns the log lines of a run in Seq order.
func (s *Store) LogList(ctx context.Context, p *store.LogListParams) ([]routine.LogLine, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.r.QueryContext(ctx, logListSQL, p.RunID, p.AfterSeq, p.Step, limit)
	if err != nil {
		return nil, fmt.Errorf("list log of %s: %w", p.RunID, err)
	}
	defer rows.Close()
	lines := []routine.LogLine{}
	for rows.Next() {
		var (
			l      routine.LogLine
			t      int64
			stream string
		)
		if err := rows.Scan(&l.RunID, &l.Seq, &l.Step, &t, &stream, &l.Text); err != nil {
			return nil, fmt.Errorf("list log of %s: %w", p.RunID, err)
		}
		l.Time = fromMicros(t)
		l.Stream = routine.Stream(stream)
		lines = append(lines, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list log of %s: %w", p.RunID, err)
	}
	return lines, nil
}

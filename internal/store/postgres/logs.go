package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

const (
	// logInsertSQL inserts any number of lines in one statement, from one
	// array per column. text is bytea: a line may hold any bytes.
	logInsertSQL = `INSERT INTO logs (run_id, seq, step, time, stream, text)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::timestamptz[], $5::text[], $6::bytea[])`
	// $3 = '' selects every step; LIMIT NULL is no limit.
	logListSQL = `SELECT run_id, seq, step, time, stream, text FROM logs
		WHERE run_id = $1 AND seq > $2 AND ($3 = '' OR step = $3)
		ORDER BY seq LIMIT $4`
)

// LogAppend stores log lines in one statement: all of them or, on error,
// none. A Seq already taken in its run wraps routine.ErrConflict; a line of
// an unknown run wraps routine.ErrNotFound.
func (s *Store) LogAppend(ctx context.Context, lines []routine.LogLine) error {
	if len(lines) == 0 {
		return nil
	}
	var b pgx.Batch
	queueLogs(&b, lines)
	if err := s.pool.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("append log: %w", translate(err))
	}
	return nil
}

// queueLogs queues the insert of lines on b, when there are any.
func queueLogs(b *pgx.Batch, lines []routine.LogLine) {
	if len(lines) == 0 {
		return
	}
	var (
		runs, steps, streams = make([]string, len(lines)), make([]string, len(lines)), make([]string, len(lines))
		seqs                 = make([]int64, len(lines))
		times                = make([]time.Time, len(lines))
		texts                = make([][]byte, len(lines))
	)
	for i, l := range lines {
		runs[i], seqs[i], steps[i], times[i], streams[i], texts[i] = l.RunID, l.Seq, l.Step, l.Time, string(l.Stream), []byte(l.Text)
	}
	b.Queue(logInsertSQL, runs, seqs, steps, times, streams, texts)
}

// LogList returns the log lines of a run in Seq order.
func (s *Store) LogList(ctx context.Context, p *store.LogListParams) ([]routine.LogLine, error) {
	var limit *int
	if p.Limit > 0 {
		limit = &p.Limit
	}
	rows, err := s.pool.Query(ctx, logListSQL, p.RunID, p.AfterSeq, p.Step, limit)
	if err != nil {
		return nil, fmt.Errorf("list log of %s: %w", p.RunID, err)
	}
	defer rows.Close()
	lines := []routine.LogLine{}
	for rows.Next() {
		var (
			l      routine.LogLine
			stream string
			text   []byte
		)
		if err := rows.Scan(&l.RunID, &l.Seq, &l.Step, &l.Time, &stream, &text); err != nil {
			return nil, fmt.Errorf("list log of %s: %w", p.RunID, err)
		}
		l.Time = l.Time.UTC()
		l.Stream = routine.Stream(stream)
		l.Text = string(text)
		lines = append(lines, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list log of %s: %w", p.RunID, err)
	}
	return lines, nil
}

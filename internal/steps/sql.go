package steps

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
)

// SQLKind runs the statements of a sql step in one transaction, on a
// SQLite file of the routine or on the PostgreSQL database whose URL is
// the secret db names (sql_postgres.go). The file, or the connection, is
// opened for the attempt and closed after it, so no run holds it between
// steps.
type SQLKind struct{}

// Name implements Kind.
func (SQLKind) Name() string { return "sql" }

// MaxSQLRowsBytes caps the rows output, as JSON: a result past it fails the
// step rather than fill the store with one output.
const MaxSQLRowsBytes = 1 << 20

// Execute implements Kind. It outputs rows (the rows of the last statement
// as a JSON array of objects), count (how many) and affected (the rows its
// last statement inserted, updated or deleted).
func (SQLKind) Execute(ctx context.Context, x *stepkind.Execution) (*stepkind.Result, error) {
	a := x.Action.SQL
	if a == nil || strings.TrimSpace(a.Query) == "" {
		return nil, permanent(errors.New("sql: query is empty"))
	}
	pg, err := postgresURL(a.DB, x.Env)
	if err != nil {
		return nil, permanent(err)
	}
	d := dialectSQLite
	if pg != nil {
		d = dialectPostgres
	}
	stmts := splitSQL(a.Query, d)
	if len(stmts) == 0 {
		return nil, permanent(errors.New("sql: query holds no statement"))
	}
	if err := checkPlaceholders(stmts, len(a.Params), d); err != nil {
		return nil, permanent(err)
	}
	if pg != nil {
		return runPostgres(ctx, x, pg, stmts, a.Params)
	}
	f, err := sqlPath(x.Dir, a.DB, x.StateDir, x.Permissions)
	if err != nil {
		return nil, permanent(err)
	}
	db, err := openSQLite(ctx, f)
	if err != nil {
		return nil, err
	}
	defer db.close()

	out, err := runSQL(ctx, db.conn, stmts, a.Params)
	if err != nil {
		return nil, db.guard.explain(err)
	}
	rel, relErr := filepath.Rel(x.Dir, f.path)
	if relErr != nil || !filepath.IsLocal(rel) {
		rel = f.path
	}
	fmt.Fprintf(x.Stdout, "%s: %s returned, %s affected\n", rel, plural(out.count, "row"), plural(out.affected, "row"))
	return out.result()
}

func plural[N ~int | ~int64](n N, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// sqlResult is what the last statement gave.
type sqlResult struct {
	rows     []byte // a JSON array
	count    int
	affected int64
}

// result is the step's outputs; rows decoded as routine.DecodeJSON
// decodes them, so they read back from the store the same.
func (out *sqlResult) result() (*stepkind.Result, error) {
	rows, err := routine.DecodeJSON(out.rows)
	if err != nil {
		return nil, fmt.Errorf("sql: decode the rows: %w", err)
	}
	return &stepkind.Result{Outputs: routine.Outputs{
		"rows":     rows,
		"count":    strconv.Itoa(out.count),
		"affected": strconv.FormatInt(out.affected, 10),
	}}, nil
}

// runSQL runs stmts in one transaction, binding params to the last one.
// A failing statement rolls back those before it.
func runSQL(ctx context.Context, db *sql.Conn, stmts []sqlStatement, params []string) (*sqlResult, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, sqlFailure(err, 0, len(stmts))
	}
	defer tx.Rollback() // after Commit it does nothing
	last := len(stmts) - 1
	for i, s := range stmts[:last] {
		if _, err := tx.ExecContext(ctx, s.text); err != nil {
			return nil, sqlFailure(err, i+1, len(stmts))
		}
	}
	var before int64
	if err := tx.QueryRowContext(ctx, "SELECT total_changes()").Scan(&before); err != nil {
		return nil, sqlFailure(err, 0, len(stmts))
	}
	args := make([]any, len(params))
	for i, p := range params {
		args[i] = p
	}
	rows, err := tx.QueryContext(ctx, stmts[last].text, args...)
	if err != nil {
		return nil, sqlFailure(err, last+1, len(stmts))
	}
	out, err := collectRows(rows)
	if err != nil {
		var capErr *rowsCapError
		if errors.As(err, &capErr) {
			return nil, permanent(err)
		}
		return nil, sqlFailure(err, last+1, len(stmts))
	}
	// total_changes() counts the rows triggers change too; changes() does
	// not, but keeps the count of an earlier statement when the last one
	// is no INSERT, UPDATE or DELETE. Together they give the last
	// statement's own count.
	var after int64
	if err := tx.QueryRowContext(ctx, "SELECT total_changes(), changes()").Scan(&after, &out.affected); err != nil {
		return nil, sqlFailure(err, 0, len(stmts))
	}
	if after == before {
		out.affected = 0
	}
	if err := tx.Commit(); err != nil {
		return nil, sqlFailure(err, 0, len(stmts))
	}
	return out, nil
}

// rowsCapError says the rows went past MaxSQLRowsBytes.
type rowsCapError struct{ count int }

func (e *rowsCapError) Error() string {
	return fmt.Sprintf("sql: the rows of the result are more than %d MiB of JSON (past row %d): add LIMIT to the query, or select fewer columns", MaxSQLRowsBytes>>20, e.count)
}

// collectRows reads rows into a JSON array of objects.
func collectRows(rows *sql.Rows) (*sqlResult, error) {
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	w := newRowsWriter(cols)
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		for i, v := range vals {
			vals[i] = jsonValue(v)
		}
		if err := w.add(vals); err != nil {
			return nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return w.result(), nil
}

// rowsWriter writes rows as a JSON array of objects, keys in column order;
// of columns with the same name, the last one's value wins. It stops at
// MaxSQLRowsBytes.
type rowsWriter struct {
	cols []string
	// keys[i] is the JSON-quoted name of column i; order the columns to
	// write, without those a later column of the same name replaces.
	keys  [][]byte
	order []int
	buf   bytes.Buffer
	count int
}

func newRowsWriter(cols []string) *rowsWriter {
	w := &rowsWriter{cols: cols, keys: make([][]byte, len(cols))}
	lastOf := make(map[string]int, len(cols))
	for i, c := range cols {
		lastOf[c] = i
	}
	seen := map[string]bool{}
	for _, c := range cols {
		if seen[c] {
			continue
		}
		seen[c] = true
		i := lastOf[c]
		w.order = append(w.order, i)
		w.keys[i], _ = json.Marshal(c)
	}
	w.buf.WriteByte('[')
	return w
}

// add writes one row, its values as json.Marshal takes them.
func (w *rowsWriter) add(vals []any) error {
	if w.count > 0 {
		w.buf.WriteByte(',')
	}
	w.buf.WriteByte('{')
	for n, i := range w.order {
		if n > 0 {
			w.buf.WriteByte(',')
		}
		w.buf.Write(w.keys[i])
		w.buf.WriteByte(':')
		v, err := json.Marshal(vals[i])
		if err != nil {
			return fmt.Errorf("column %s: %w", w.cols[i], err)
		}
		w.buf.Write(v)
	}
	w.buf.WriteByte('}')
	w.count++
	if w.buf.Len()+1 > MaxSQLRowsBytes {
		return &rowsCapError{count: w.count}
	}
	return nil
}

func (w *rowsWriter) result() *sqlResult {
	w.buf.WriteByte(']')
	return &sqlResult{rows: w.buf.Bytes(), count: w.count}
}

// jsonValue is a SQLite value as the rows output holds it: a blob as text
// when it is UTF-8, else as base64; an infinite number as the string
// "Infinity" or "-Infinity", which JSON lacks.
func jsonValue(v any) any {
	switch x := v.(type) {
	case []byte:
		if utf8.Valid(x) {
			return string(x)
		}
		return base64.StdEncoding.EncodeToString(x)
	case float64:
		switch {
		case math.IsInf(x, 1):
			return "Infinity"
		case math.IsInf(x, -1):
			return "-Infinity"
		}
	case time.Time:
		// A DATE, DATETIME or TIMESTAMP column the driver parsed.
		return x.Format(time.RFC3339Nano)
	}
	return v
}

// sqlFailure turns an error of statement n (1-based; 0 when it is of no
// statement) into the step's error: SQLite's message, with the statement's
// number when the query has several. Only a lock that stayed busy is worth
// another try; the same SQL on the same data fails the same way.
func sqlFailure(err error, n, of int) error {
	where := "sql"
	if n > 0 && of > 1 {
		where = fmt.Sprintf("sql: statement %d of %d", n, of)
	}
	msg := err.Error()
	if strings.Contains(msg, "missing argument") {
		msg += " (params bind to the ? of the last statement)"
	}
	wrapped := fmt.Errorf("%s: %s", where, msg)
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN:
			return &sqlError{err: wrapped, cause: err, retryable: true}
		}
		return &sqlError{err: wrapped, cause: err}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", where, err)
	}
	return &sqlError{err: wrapped, cause: err, retryable: true}
}

// sqlError is a failed sql step. CanRetry tells the engine whether
// another try may succeed: a syntax error or a constraint violation will
// not, a busy lock or a full disk may.
type sqlError struct {
	err       error
	cause     error
	retryable bool
}

func (e *sqlError) Error() string  { return e.err.Error() }
func (e *sqlError) Unwrap() error  { return e.cause }
func (e *sqlError) CanRetry() bool { return e.retryable }

// permanent marks err as one another try cannot fix.
func permanent(err error) error { return &sqlError{err: err, cause: err} }

// within reports whether path lies under the directory root.
func within(root, path string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != "." && filepath.IsLocal(rel)
}

// resolveExisting resolves the symlinks of the longest part of path that
// exists, and appends the rest: the path a file created there would have.
func resolveExisting(path string) (string, error) {
	rest := ""
	for p := path; ; {
		r, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(r, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		if _, err := os.Lstat(p); err == nil {
			// A symlink to nothing: the file SQLite would create is
			// wherever it points.
			return "", fmt.Errorf("%s is a symlink to a missing file", p)
		}
		up := filepath.Dir(p)
		if up == p {
			return path, nil
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = up
	}
}

// sqlStatement is one statement of a query, and its number of positional
// parameters (SQLite: the highest index of its ? and ?NNN; PostgreSQL: of
// its $N).
type sqlStatement struct {
	text   string
	params int
	named  string // SQLite: the first :name, @name or $name, if any
	qmarks int    // PostgreSQL: ? outside strings, an operator there
}

// sqlDialect is the SQL a database speaks, as far as splitting goes.
type sqlDialect int

const (
	dialectSQLite sqlDialect = iota
	dialectPostgres
)

// splitSQL cuts a query into its statements at the semicolons that end
// them: not inside a string, a quoted name or a comment. For SQLite, as
// sqlite3_complete does, nor inside the BEGIN … END of CREATE TRIGGER (whose
// CASE … END it tells apart). For PostgreSQL, nor inside a dollar-quoted
// string ($$ … $$, $tag$ … $tag$), an E'…' string with backslash escapes,
// a nested /* */ comment, or the BEGIN ATOMIC … END body of a function.
// Statements that hold only comments are left out. What it does not
// understand it leaves to the database, which reports it.
func splitSQL(q string, d sqlDialect) []sqlStatement {
	pg := d == dialectPostgres
	var (
		out      []sqlStatement
		start    int
		cur      sqlStatement
		words    int    // SQLite: words of the statement so far, up to 3
		body     bool   // SQLite: CREATE [TEMP] TRIGGER; PostgreSQL: after BEGIN ATOMIC
		cases    int    // open CASEs in a body
		endsBody bool   // the last word was the END of a body
		prev     string // PostgreSQL: the last word, upper-case
		hasToken bool
	)
	finish := func(end int) {
		if hasToken {
			cur.text = strings.Trim(q[start:end], sqlSpace)
			out = append(out, cur)
		}
		start, cur, words, body, cases, endsBody, prev, hasToken = end+1, sqlStatement{}, 0, false, 0, false, "", false
	}
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == ';':
			if !body || endsBody {
				finish(i)
			}
			i++
			continue
		case strings.IndexByte(sqlSpace, c) >= 0:
			i++
			continue
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			for i < len(q) && q[i] != '\n' {
				i++
			}
			continue
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			i = commentEnd(q, i, pg)
			continue
		}
		hasToken = true
		word := ""
		switch {
		case c == '\'' || c == '"' || !pg && (c == '`' || c == '['):
			i = quoteEnd(q, i, false)
		case pg && c == '$' && i+1 < len(q) && q[i+1] >= '0' && q[i+1] <= '9':
			j := i + 1
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				j++
			}
			if n, err := strconv.Atoi(q[i+1 : j]); err == nil {
				cur.params = max(cur.params, n)
			} else {
				cur.params = math.MaxInt // past any params: checkPlaceholders says so
			}
			i = j
		case pg && c == '$':
			i = dollarQuoteEnd(q, i)
		case pg && c == '?':
			cur.qmarks++
			i++
		case c == '?':
			j := i + 1
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				j++
			}
			if j > i+1 {
				if n, err := strconv.Atoi(q[i+1 : j]); err == nil {
					cur.params = max(cur.params, n)
				}
			} else {
				cur.params++
			}
			i = j
		case !pg && (c == ':' || c == '@' || c == '$') && i+1 < len(q) && isWordByte(q[i+1]):
			j := i + 1
			for j < len(q) && isWordByte(q[j]) {
				j++
			}
			if cur.named == "" {
				cur.named = q[i:j]
			}
			i = j
		case isWordByte(c):
			j := i
			// PostgreSQL names may hold $ after their first letter.
			for j < len(q) && (isWordByte(q[j]) || pg && q[j] == '$') {
				j++
			}
			word = strings.ToUpper(q[i:j])
			i = j
			if pg && word == "E" && i < len(q) && q[i] == '\'' {
				i = quoteEnd(q, i, true)
				word = ""
			}
		default:
			i++
		}
		endsBody = false
		if word == "" {
			continue
		}
		if pg {
			if prev == "BEGIN" && word == "ATOMIC" {
				body = true
			}
			prev = word
		} else {
			switch words++; {
			case words == 1:
				body = false
				if word != "CREATE" {
					words = 3 // no trigger: stop looking
				}
			case words == 2 && (word == "TEMP" || word == "TEMPORARY"):
				words = 1
			case words == 2:
				body = word == "TRIGGER"
			}
		}
		if body {
			switch word {
			case "CASE":
				cases++
			case "END":
				if cases > 0 {
					cases--
				} else {
					endsBody = true
				}
			}
		}
	}
	finish(len(q))
	return out
}

// quoteEnd returns the index past the quoted string or name that starts
// at q[i]: '…', "…", and for SQLite `…` and […]. A doubled quote inside is
// a quote, not the end; with backslash, so is \' (PostgreSQL's E'…').
func quoteEnd(q string, i int, backslash bool) int {
	closing := q[i]
	if closing == '[' {
		closing = ']'
	}
	for i++; i < len(q); i++ {
		switch {
		case backslash && q[i] == '\\':
			i++
		case q[i] != closing:
		case closing != ']' && i+1 < len(q) && q[i+1] == closing:
			i++
		default:
			return i + 1
		}
	}
	return len(q)
}

// commentEnd returns the index past the /* comment */ at q[i], which
// nests in PostgreSQL.
func commentEnd(q string, i int, nested bool) int {
	depth := 0
	for i < len(q) {
		switch {
		case strings.HasPrefix(q[i:], "/*") && (nested || depth == 0):
			depth++
			i += 2
		case strings.HasPrefix(q[i:], "*/"):
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return len(q)
}

// dollarQuoteEnd returns the index past the dollar-quoted string at q[i]
// ($$ … $$ or $tag$ … $tag$), or i+1 when no tag starts there.
func dollarQuoteEnd(q string, i int) int {
	j := i + 1
	for j < len(q) && isWordByte(q[j]) {
		j++
	}
	if j >= len(q) || q[j] != '$' {
		return i + 1
	}
	tag := q[i : j+1]
	if end := strings.Index(q[j+1:], tag); end >= 0 {
		return j + 1 + end + len(tag)
	}
	return len(q)
}

// sqlSpace are the bytes SQLite takes for white space.
const sqlSpace = " \t\n\v\f\r"

func isWordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// checkPlaceholders checks that only the last statement has parameters,
// that they are positional, and that params fills each of them.
func checkPlaceholders(stmts []sqlStatement, params int, d sqlDialect) error {
	where := func(i int) string {
		if len(stmts) == 1 {
			return "sql"
		}
		return fmt.Sprintf("sql: statement %d of %d", i+1, len(stmts))
	}
	mark := "?"
	if d == dialectPostgres {
		mark = "$N"
	}
	last := len(stmts) - 1
	for i, s := range stmts {
		switch {
		case s.named != "":
			return fmt.Errorf("%s: named parameter %s: params is a list, so write ? (or ?1, ?2 …) instead", where(i), s.named)
		case i < last && s.params > 0:
			return fmt.Errorf("%s has %s parameters, but params bind to the last statement only: move the values into it, or split the step", where(i), mark)
		}
	}
	n := stmts[last].params
	switch {
	case n == params:
		return nil
	case n == 0 && stmts[last].qmarks > 0:
		return fmt.Errorf("%s has no parameters, but params has %s: PostgreSQL numbers its placeholders, so write $1, $2 … instead of ?", where(last), plural(params, "value"))
	case n == math.MaxInt:
		return fmt.Errorf("%s has a parameter number past any params: give one value per $N", where(last))
	}
	return fmt.Errorf("%s has %s, but params has %s: give one value per %s", where(last), plural(n, "parameter"), plural(params, "value"), mark)
}

var _ stepkind.Kind = SQLKind{}

package steps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
)

// pgConnectTimeout bounds the connection of a sql step to PostgreSQL when
// its URL sets no connect_timeout.
const pgConnectTimeout = 10 * time.Second

// secretRef matches a db that is one secret reference, {{NAME}}.
var secretRef = regexp.MustCompile(`^\{\{\s*([A-Z][A-Z0-9_]*)\s*\}\}$`)

// pgTarget is the PostgreSQL database of a sql step.
type pgTarget struct {
	url    string
	secret string // the name of the secret holding url
}

// postgresURL returns the PostgreSQL database of a sql step whose db is
// one secret reference, {{NAME}}, to a postgres:// URL, or nil when db is
// a SQLite file. db is not a template: only a declared secret, read from
// the resolved secrets in env, can name a database server, and a URL
// written in the file, password and all, is refused.
func postgresURL(db string, env map[string]string) (*pgTarget, error) {
	m := secretRef.FindStringSubmatch(db)
	switch {
	case m == nil && isPostgresURL(db):
		return nil, errors.New(`sql.db: a PostgreSQL URL holds a password, so it does not go in routine.yaml: put it in a secret (secrets: [DATABASE_URL]) and write db: "{{DATABASE_URL}}"`)
	case m == nil && strings.Contains(db, "{{"):
		return nil, errors.New(`sql.db is not templated: write the path of the SQLite file, or one secret reference such as "{{DATABASE_URL}}" holding a postgres:// URL`)
	case m == nil:
		return nil, nil
	}
	v, ok := env[m[1]]
	if !ok {
		return nil, fmt.Errorf("sql.db: %s is not a secret of the run: add it to the routine's secrets", m[1])
	}
	v = strings.TrimSpace(v)
	if !isPostgresURL(v) {
		return nil, fmt.Errorf("sql.db: the secret %s does not hold a postgres:// or postgresql:// URL", m[1])
	}
	return &pgTarget{url: v, secret: m[1]}, nil
}

func isPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// runPostgres runs stmts on the database of t in one transaction, on a
// connection of its own that it closes after.
func runPostgres(ctx context.Context, x *stepkind.Execution, t *pgTarget, stmts []sqlStatement, params []string) (*stepkind.Result, error) {
	cfg, err := pgx.ParseConfig(t.url)
	if err != nil {
		// The parser's message quotes the URL: it stays out.
		return nil, permanent(fmt.Errorf("sql.db: the secret %s does not hold a valid PostgreSQL URL, such as postgres://user:password@host:5432/database?sslmode=verify-full", t.secret))
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = pgConnectTimeout
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "routines"
	}
	// One unnamed statement per query: the connection lives for one
	// attempt, so a statement cache would never be used, and a pooler in
	// transaction mode (PgBouncer) accepts unnamed statements.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeDescribeExec
	f := &pgFail{
		where: "postgres " + net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))) + "/" + cfg.Database,
		of:    len(stmts),
		hide:  []string{t.url},
	}
	if len(cfg.Password) >= 4 {
		f.hide = append(f.hide, cfg.Password)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, f.connect(ctx, err, cfg.ConnectTimeout)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	out, err := postgresTx(ctx, conn, stmts, params, f)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(x.Stdout, "%s: %s, %s returned, %s affected\n", f.where, plural(len(stmts), "statement"), plural(out.count, "row"), plural(out.affected, "row"))
	return out.result()
}

// postgresTx runs stmts in one transaction, binding params to the last
// one. A failing statement rolls back those before it.
func postgresTx(ctx context.Context, conn *pgx.Conn, stmts []sqlStatement, params []string, f *pgFail) (*sqlResult, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, f.statement(ctx, err, 0)
	}
	defer tx.Rollback(ctx) // after Commit it does nothing
	last := len(stmts) - 1
	for i, s := range stmts[:last] {
		if _, err := tx.Exec(ctx, s.text); err != nil {
			return nil, f.statement(ctx, err, i+1)
		}
	}
	// Values go as text, which the server converts to the type of the
	// parameter ("1250" to an integer), as SQLite's columns do.
	args := make([]any, 0, len(params)+1)
	args = append(args, pgResultFormats)
	for _, p := range params {
		args = append(args, p)
	}
	rows, err := tx.Query(ctx, stmts[last].text, args...)
	if err != nil {
		return nil, f.statement(ctx, err, last+1)
	}
	out, err := collectPgRows(rows, conn.TypeMap())
	if err != nil {
		var capErr *rowsCapError
		if errors.As(err, &capErr) {
			return nil, permanent(err)
		}
		return nil, f.statement(ctx, err, last+1)
	}
	// The command tag of SELECT counts the rows it returned; only those of
	// INSERT, UPDATE, DELETE and MERGE count the rows changed, and not
	// those that triggers changed.
	tag := rows.CommandTag()
	if tag.Insert() || tag.Update() || tag.Delete() || strings.HasPrefix(tag.String(), "MERGE ") {
		out.affected = tag.RowsAffected()
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, f.statement(ctx, err, 0)
	}
	return out, nil
}

// pgResultFormats asks the server for the values of these types in binary,
// which pgx decodes to Go values; all others come as PostgreSQL's own text
// (json and jsonb as their JSON text, an interval as "1 day 02:00:00").
var pgResultFormats = func() pgx.QueryResultFormatsByOID {
	m := pgx.QueryResultFormatsByOID{}
	for _, oid := range []uint32{
		pgtype.BoolOID, pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.Float4OID, pgtype.Float8OID,
		pgtype.NumericOID, pgtype.DateOID, pgtype.TimestampOID, pgtype.TimestamptzOID, pgtype.ByteaOID, pgtype.UUIDOID,
		pgtype.BoolArrayOID, pgtype.Int2ArrayOID, pgtype.Int4ArrayOID, pgtype.Int8ArrayOID, pgtype.Float4ArrayOID,
		pgtype.Float8ArrayOID, pgtype.NumericArrayOID, pgtype.DateArrayOID, pgtype.TimestampArrayOID,
		pgtype.TimestamptzArrayOID, pgtype.ByteaArrayOID, pgtype.UUIDArrayOID, pgtype.TextArrayOID, pgtype.VarcharArrayOID,
	} {
		m[oid] = pgtype.BinaryFormatCode
	}
	return m
}()

// collectPgRows reads rows into a JSON array of objects, as collectRows.
func collectPgRows(rows pgx.Rows, m *pgtype.Map) (*sqlResult, error) {
	defer rows.Close()
	fields := rows.FieldDescriptions()
	cols := make([]string, len(fields))
	for i, fd := range fields {
		cols[i] = fd.Name
	}
	w := newRowsWriter(cols)
	vals := make([]any, len(fields))
	for rows.Next() {
		raw := rows.RawValues()
		for i := range fields {
			v, err := pgValue(m, &fields[i], raw[i])
			if err != nil {
				return nil, fmt.Errorf("column %s: %w", cols[i], err)
			}
			vals[i] = v
		}
		if err := w.add(vals); err != nil {
			return nil, err
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return w.result(), nil
}

// pgValue is a value of a row as the rows output holds it.
func pgValue(m *pgtype.Map, fd *pgconn.FieldDescription, raw []byte) (any, error) {
	if raw == nil {
		return nil, nil
	}
	if fd.Format == pgtype.TextFormatCode {
		switch fd.DataTypeOID {
		case pgtype.JSONOID, pgtype.JSONBOID:
			return json.RawMessage(raw), nil
		}
		return string(raw), nil
	}
	t, ok := m.TypeForOID(fd.DataTypeOID)
	if !ok {
		return nil, fmt.Errorf("no decoder for type %d", fd.DataTypeOID)
	}
	v, err := t.Codec.DecodeValue(m, fd.DataTypeOID, fd.Format, raw)
	if err != nil {
		return nil, err
	}
	return pgJSON(v, fd.DataTypeOID == pgtype.DateOID || fd.DataTypeOID == pgtype.DateArrayOID), nil
}

// pgJSON is a decoded value (or array element) for json.Marshal: a number
// as a number (a numeric only when a float64 holds it exactly, else its
// digits as a string), a time in RFC 3339 (UTC), a date as 2006-01-02,
// bytea as text when it is UTF-8 and else base64, a uuid in its usual form,
// and NaN and infinities as strings.
func pgJSON(v any, date bool) any {
	switch x := v.(type) {
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return specialFloat(float64(x))
		}
		return json.Number(strconv.FormatFloat(float64(x), 'g', -1, 32))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return specialFloat(x)
		}
	case pgtype.Numeric:
		return numericJSON(x)
	case time.Time:
		if date {
			return x.Format(time.DateOnly)
		}
		return x.UTC().Format(time.RFC3339Nano)
	case pgtype.InfinityModifier:
		return x.String() // infinity, -infinity
	case []byte:
		return jsonValue(x)
	case [16]byte:
		return fmt.Sprintf("%x-%x-%x-%x-%x", x[0:4], x[4:6], x[6:8], x[8:10], x[10:16])
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = pgJSON(e, date)
		}
		return out
	}
	return v
}

func specialFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case f > 0:
		return "Infinity"
	}
	return "-Infinity"
}

// numericJSON is a numeric as a JSON number when reading that number as a
// float64 gives the same value back, else as a string of its digits, which
// a float64 would round.
func numericJSON(n pgtype.Numeric) any {
	switch {
	case !n.Valid:
		return nil
	case n.NaN:
		return "NaN"
	case n.InfinityModifier == pgtype.Infinity:
		return "Infinity"
	case n.InfinityModifier == pgtype.NegativeInfinity:
		return "-Infinity"
	}
	b, err := n.MarshalJSON() // the plain digits, such as 12.50
	if err != nil {
		return nil
	}
	text := string(b)
	f, err := strconv.ParseFloat(text, 64)
	if err == nil && trimDecimal(strconv.FormatFloat(f, 'f', -1, 64)) == trimDecimal(text) {
		return json.Number(text)
	}
	return text
}

// trimDecimal drops the trailing zeros of a decimal's fraction.
func trimDecimal(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if s == "-0" {
		return "0"
	}
	return s
}

// pgFail turns pgx errors into the step's errors. No error holds the
// URL or the password.
type pgFail struct {
	where string   // postgres host:port/database
	of    int      // the number of statements
	hide  []string // the URL and the password
}

// connect describes a failed connection: refused or unanswered is worth
// another try (timeout), refused credentials are not (auth).
func (f *pgFail) connect(ctx context.Context, err error, timeout time.Duration) error {
	prefix := "sql: connect to " + f.where
	var pe *pgconn.PgError
	var oe *net.OpError
	switch {
	case errors.As(err, &pe):
		return f.pgError(prefix, pe)
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", prefix, ctx.Err())
	case errors.Is(err, context.DeadlineExceeded):
		return stepkind.Fail(routine.CodeTimeout, true, f.clean(fmt.Sprintf("%s: no answer in %s", prefix, timeout)))
	case errors.As(err, &oe):
		return stepkind.Fail(routine.CodeTimeout, true, f.clean(prefix+": "+oe.Error()))
	}
	return stepkind.Fail(routine.CodeTimeout, true, f.clean(prefix+": "+err.Error()))
}

// statement describes an error of statement n (1-based; 0 when it is of
// no statement): PostgreSQL's message, detail and hint, and the
// statement's number when the query has several.
func (f *pgFail) statement(ctx context.Context, err error, n int) error {
	prefix := "sql"
	if n > 0 && f.of > 1 {
		prefix = fmt.Sprintf("sql: statement %d of %d", n, f.of)
	}
	var pe *pgconn.PgError
	var ne net.Error
	switch {
	case errors.As(err, &pe):
		return f.pgError(prefix, pe)
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", prefix, ctx.Err())
	case errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), pgconn.SafeToRetry(err):
		// The connection broke: the transaction was not committed.
		return stepkind.Fail(routine.CodeTimeout, true, f.clean(fmt.Sprintf("%s: %s: %v", prefix, f.where, err)))
	}
	// What pgx refuses before sending (a value it cannot encode) fails
	// the same way every time.
	return stepkind.Fail("", false, f.clean(fmt.Sprintf("%s: %v", prefix, err)))
}

// pgError describes an error PostgreSQL reported, by its SQLSTATE.
func (f *pgFail) pgError(prefix string, pe *pgconn.PgError) error {
	msg := fmt.Sprintf("%s: %s (SQLSTATE %s)", prefix, pe.Message, pe.Code)
	if pe.Detail != "" {
		msg += "; " + pe.Detail
	}
	if pe.Hint != "" {
		msg += " Hint: " + pe.Hint
	}
	code, retryable := pgClass(pe.Code)
	return stepkind.Fail(code, retryable, f.clean(msg))
}

// pgClass returns the error code and whether another try may succeed for
// a SQLSTATE: a lost serialization race, a deadlock, a full server or one
// that is starting or stopping may pass; a syntax error, a missing table,
// a constraint violation or a bad value fail the same way every time.
func pgClass(state string) (code string, retryable bool) {
	switch state {
	case "28P01", "28000": // invalid_password, invalid_authorization_specification
		return routine.CodeAuth, false
	case "40001", "40P01", "55P03": // serialization_failure, deadlock_detected, lock_not_available
		return "", true
	case "57014": // query_canceled: statement_timeout
		return routine.CodeTimeout, true
	case "57P01", "57P02", "57P03": // admin_shutdown, crash_shutdown, cannot_connect_now
		return routine.CodeTimeout, true
	}
	switch state[:min(2, len(state))] {
	case "08": // connection_exception
		return routine.CodeTimeout, true
	case "53", "58": // insufficient_resources (too_many_connections 53300, disk_full), system_error
		return "", true
	}
	return "", false
}

// clean returns msg as an error, without the URL or the password.
func (f *pgFail) clean(msg string) error {
	for _, h := range f.hide {
		msg = strings.ReplaceAll(msg, h, "***")
	}
	return errors.New(msg)
}

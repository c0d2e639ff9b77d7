package sqlite

import (
	"database/sql"
	"encoding/json"
	"time"

	"github.com/routines-dev/routines/internal/routine"
)

// Times are stored as microseconds since the Unix epoch, the precision
// PostgreSQL keeps, and come back in UTC.

func micros(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func fromNullMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

// jsonText encodes v as JSON text, or as NULL when empty is true: an empty
// map, list or payload is stored as NULL and read back as nil.
func jsonText(v any, empty bool) (any, error) {
	if empty {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// unmarshalNull decodes the JSON text s into dst, leaving dst alone when s
// is NULL.
func unmarshalNull(s sql.NullString, dst any) error {
	if !s.Valid {
		return nil
	}
	return json.Unmarshal([]byte(s.String), dst)
}

// usageText encodes the usage of a run or a step as JSON text, or as NULL
// when it is zero.
func usageText(u routine.Usage) (any, error) {
	return jsonText(u, u.IsZero())
}

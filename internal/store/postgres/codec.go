package postgres

import (
	"encoding/json"
	"time"
)

// Times come back in UTC: pgx gives a timestamptz in the local zone.

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// jsonText encodes v as JSON text, or as NULL (nil) when empty is true: an
// empty map, list or payload is stored as NULL and read back as nil.
func jsonText(v any, empty bool) (*string, error) {
	if empty {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	s := string(b)
	return &s, nil
}

// unmarshalNull decodes the JSON text s into dst, leaving dst alone when s
// is NULL.
func unmarshalNull(s *string, dst any) error {
	if s == nil {
		return nil
	}
	return json.Unmarshal([]byte(*s), dst)
}

// labelsArg is a list of labels as a text[] argument: '{}', never NULL,
// for none.
func labelsArg(labels []string) []string {
	if labels == nil {
		return []string{}
	}
	return labels
}

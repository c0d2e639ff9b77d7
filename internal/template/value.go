package template

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/routines-dev/routines/internal/routine"
)

// stringify writes a value the way a rendered string shows it: strings as
// they are, integral numbers without a fraction, nil as nothing, and maps,
// slices and structs as compact JSON.
func stringify(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case int:
		return strconv.Itoa(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case int32:
		return strconv.FormatInt(int64(v), 10), nil
	case uint:
		return strconv.FormatUint(uint64(v), 10), nil
	case uint64:
		return strconv.FormatUint(v, 10), nil
	case float64:
		return formatFloat(v), nil
	case float32:
		return formatFloat(float64(v)), nil
	case []byte:
		return string(v), nil
	case time.Time:
		return v.Format(time.RFC3339Nano), nil
	case time.Duration:
		return v.String(), nil
	case fmt.Stringer:
		return v.String(), nil
	}
	s, err := routine.JSONText(v)
	if err != nil {
		return "", fmt.Errorf("cannot write %T as text: %w", v, err)
	}
	return s, nil
}

func formatFloat(f float64) string {
	if math.Abs(f) < 1e21 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

package routine

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written as Go writes it ("1m30s", "500ms"),
// with days accepted in front ("2d", "1d12h").
type Duration time.Duration

// durationHint says what a duration looks like, for the errors that
// refuse one.
const durationHint = "write a number and a unit, such as 500ms, 30s, 10m, 1h30m, 2d or 1d12h"

// UnmarshalText parses "30s", "10m", "1h30m", "2d" or "1d12h". A day is
// 24 hours; Go's units have no "d", so the days are what comes before one.
func (d *Duration) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if strings.HasPrefix(s, "-") {
		return fmt.Errorf("invalid duration %q: it must not be negative", s)
	}
	v, ok := parseDuration(s)
	if !ok {
		return fmt.Errorf("invalid duration %q: %s", s, durationHint)
	}
	*d = Duration(v)
	return nil
}

// parseDuration reads an unsigned duration: days, Go's units, or days
// then Go's units.
func parseDuration(s string) (time.Duration, bool) {
	days, rest, hasDays := strings.Cut(s, "d")
	if !hasDays {
		v, err := time.ParseDuration(s)
		return v, err == nil
	}
	n, err := strconv.ParseFloat(days, 64)
	if err != nil || days == "" || days[0] < '0' || days[0] > '9' || n > maxDays {
		return 0, false
	}
	total := time.Duration(n * float64(24*time.Hour))
	if rest == "" {
		return total, true
	}
	v, err := time.ParseDuration(rest)
	if err != nil || rest[0] == '+' || rest[0] == '-' || total+v < total {
		return 0, false
	}
	return total + v, true
}

// maxDays is the most days a time.Duration holds.
const maxDays = float64(math.MaxInt64 / int64(24*time.Hour))

// MarshalText writes the duration as Go does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// String writes the duration as a routine file would: whole days first
// ("2d", "1d12h"), then Go's units without their zero tails ("1h30m", not
// "1h30m0s").
func (d Duration) String() string {
	days, rest := time.Duration(d)/(24*time.Hour), time.Duration(d)%(24*time.Hour)
	var b strings.Builder
	if days > 0 {
		fmt.Fprintf(&b, "%dd", days)
	}
	if rest > 0 || days == 0 {
		s := rest.String()
		if strings.HasSuffix(s, "m0s") {
			s = strings.TrimSuffix(s, "0s")
		}
		if strings.HasSuffix(s, "h0m") {
			s = strings.TrimSuffix(s, "0m")
		}
		b.WriteString(s)
	}
	return b.String()
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ByteSize is a size in bytes written with an optional unit: 512MiB, 1G, 64k.
type ByteSize int64

var byteUnits = []struct {
	suffix string
	factor int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
	{"ki", 1 << 10}, {"mi", 1 << 20}, {"gi", 1 << 30},
	{"kb", 1000}, {"mb", 1000 * 1000}, {"gb", 1000 * 1000 * 1000},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1},
}

// UnmarshalText parses a size such as 512MiB, 2G or 1048576.
func (b *ByteSize) UnmarshalText(text []byte) error {
	s := strings.ToLower(strings.TrimSpace(string(text)))
	factor := int64(1)
	for _, u := range byteUnits {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, factor = strings.TrimSpace(n), u.factor
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("invalid size %q: write a number with an optional unit, such as 512MiB or 2G", string(text))
	}
	*b = ByteSize(n * factor)
	return nil
}

// MarshalText writes the size in bytes.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(strconv.FormatInt(int64(b), 10)), nil }

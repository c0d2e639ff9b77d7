package cli

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/routines-dev/routines/internal/routine"
)

// durationFlag is a duration on the command line, read as routine files
// read theirs (routine.Duration): Go's units and days, such as 90s, 7d or
// 1d12h. Every duration flag is one, so --since 7d works wherever
// `every: 7d` does.
type durationFlag struct{ p *time.Duration }

// Set implements pflag.Value; the error says what to write.
func (f durationFlag) Set(s string) error {
	var d routine.Duration
	if err := d.UnmarshalText([]byte(s)); err != nil {
		return err
	}
	*f.p = d.D()
	return nil
}

// String implements pflag.Value. Zero is "0", which help leaves out of
// "(default …)" as it does for its own durations.
func (f durationFlag) String() string {
	if f.p == nil || *f.p == 0 {
		return "0"
	}
	return f.p.String()
}

// Type implements pflag.Value.
func (durationFlag) Type() string { return "duration" }

// durationVar defines a duration flag that takes days, where
// FlagSet.DurationVar would define one that does not.
func durationVar(f *pflag.FlagSet, p *time.Duration, name string, value time.Duration, usage string) {
	*p = value
	f.Var(durationFlag{p}, name, usage)
}

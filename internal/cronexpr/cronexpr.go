// Package cronexpr reads cron expressions the way the scheduler runs them:
// five fields (minute first), six (seconds first) or a descriptor such as
// @daily. Its errors name the field and its valid values, and Note spells
// out how six fields are read, since a five-field expression with one field
// too many is still valid and means something else. internal/spec validates
// with it and internal/trigger schedules with it, so both read alike.
package cronexpr

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/routines-dev/routines/internal/suggest"
)

// parser is the authority once the fields have been checked here.
var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// descriptors are the fixed schedules; @every DURATION is the other form.
var descriptors = []string{"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}

// field is one position of an expression and the values it takes.
type field struct {
	name     string // as in "minute field", and in the five-field layout line
	one, all string // "minute 8", "minutes 0-30"
	every    string // for * in Note
	min, max int
	names    []string // upper-case names for min, min+1, …; nil when none
	long     []string // the names in words, for Note
}

var (
	second = &field{name: "second", one: "second", all: "seconds", every: "every second", max: 59}
	minute = &field{name: "minute", one: "minute", all: "minutes", every: "every minute", max: 59}
	hour   = &field{name: "hour", one: "hour", all: "hours", every: "every hour", max: 23}
	dom    = &field{name: "day-of-month", one: "day of the month", all: "days of the month", every: "every day of the month", min: 1, max: 31}
	month  = &field{name: "month", one: "month", all: "months", every: "every month", min: 1, max: 12,
		names: []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"},
		long:  []string{"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"}}
	dow = &field{name: "day-of-week", one: "day of the week", all: "days of the week", every: "every day of the week", max: 6,
		names: []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"},
		long:  []string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}}

	five = []*field{minute, hour, dom, month, dow}
	six  = []*field{second, minute, hour, dom, month, dow}
)

// layout lists the names of fields, as "minute hour day-of-month …".
func layout(fs []*field) string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.name
	}
	return strings.Join(names, " ")
}

// Parse returns the schedule of expr. Its error says what is wrong and what
// to write instead, naming the field at fault; callers prefix it with the
// expression, as in `cron "0 8 * * MON-FRY": day-of-week field …`. The
// schedule reads times in the location of the time given to Next.
func Parse(expr string) (cron.Schedule, error) {
	if err := check(expr); err != nil {
		return nil, err
	}
	// check follows robfig/cron's grammar (FuzzParse holds them together),
	// so the parser's own message is for what check does not foresee.
	return parser.Parse(expr)
}

// check reports what of expr the parser would refuse, in the user's terms.
func check(expr string) error {
	fs := strings.Fields(expr)
	switch {
	case len(fs) == 0:
		return fmt.Errorf(`the expression is empty; write 5 fields (%s) such as "0 8 * * 1-5"`, layout(five))
	case strings.HasPrefix(fs[0], "TZ="), strings.HasPrefix(fs[0], "CRON_TZ="):
		prefix, zone, _ := strings.Cut(fs[0], "=")
		return fmt.Errorf("a %s= prefix sets the time zone; write timezone: %s beside cron: and drop the prefix", prefix, zone)
	case strings.HasPrefix(expr, "@"):
		return checkDescriptor(expr)
	case len(fs) != 5 && len(fs) != 6:
		msg := fmt.Sprintf(`%d fields; write 5 (%s) such as "0 8 * * 1-5", 6 with seconds first (%s), or a descriptor such as @daily`, len(fs), layout(five), layout(six))
		if len(fs) == 7 {
			msg += "; a year field is not supported"
		}
		return errors.New(msg)
	}
	fields := five
	if len(fs) == 6 {
		fields = six
	}
	for i, text := range fs {
		f := fields[i]
		if err := f.check(text); err != nil {
			msg := fmt.Sprintf("%s field %q: %v", f.name, text, err)
			if f == month && len(fs) == 6 && dow.check(text) == nil {
				msg += fmt.Sprintf("; six fields are read seconds first, as %s, so %q is the month", layout(six), text)
				if form := fiveFieldForm(fs); form != "" {
					msg += fmt.Sprintf(": if you meant day-of-week %s, drop the sixth field: %q", text, form)
				}
			}
			return errors.New(msg)
		}
	}
	return nil
}

func checkDescriptor(expr string) error {
	const every = "@every "
	if d, ok := strings.CutPrefix(expr, every); ok {
		dur, err := time.ParseDuration(d)
		switch {
		case err != nil:
			return fmt.Errorf("@every takes a duration such as 30s, 5m or 1h30m, got %q", d)
		case dur < time.Second:
			return fmt.Errorf("@every must be at least 1s, got %s", d)
		}
		return nil
	}
	if slices.Contains(descriptors, expr) {
		return nil
	}
	if expr == "@every" {
		return errors.New("@every takes a duration such as 30s, 5m or 1h30m")
	}
	return fmt.Errorf("%s is not a descriptor; write one of %s, or @every DURATION%s", expr, strings.Join(descriptors, " "), suggest.DidYouMean(expr, descriptors))
}

// check reports what is wrong with text as this field, following
// robfig/cron: a comma-separated list of *, ?, a value, a range a-b, each
// with an optional /step (a value with a step runs to the maximum).
func (f *field) check(text string) error {
	items := strings.FieldsFunc(text, func(r rune) bool { return r == ',' })
	if len(items) == 0 {
		return fmt.Errorf("no value; write %s", f.valid())
	}
	for _, item := range items {
		rng, step, stepped := strings.Cut(item, "/")
		if strings.Contains(step, "/") {
			return fmt.Errorf("%s has more than one /; write a step once, such as */10", item)
		}
		if stepped {
			n, err := strconv.Atoi(step)
			if err != nil || n < 1 {
				return fmt.Errorf("the step in %s must be a whole number of 1 or more, such as */10", item)
			}
		}
		if rng == "*" || rng == "?" {
			continue
		}
		bounds := strings.Split(rng, "-")
		if len(bounds) > 2 {
			return fmt.Errorf("%s is not a value or a range; write one such as %s", item, f.example())
		}
		var vals []int
		for _, b := range bounds {
			v, err := f.value(b)
			if err != nil {
				return err
			}
			vals = append(vals, v)
		}
		if len(vals) == 2 && vals[0] > vals[1] {
			return fmt.Errorf("the range %s runs backwards; write the smaller value first, such as %s-%s", rng, bounds[1], bounds[0])
		}
	}
	return nil
}

// value reads one bound: a number or, for months and weekdays, a name.
func (f *field) value(s string) (int, error) {
	if i := slices.Index(f.names, strings.ToUpper(s)); i >= 0 {
		return f.min + i, nil
	}
	n, err := strconv.Atoi(s)
	switch {
	case err != nil && f.names != nil:
		hint := suggest.Closest(strings.ToUpper(s), f.names)
		if hint != "" {
			hint = " (did you mean " + hint + "?)"
		}
		return 0, fmt.Errorf("%s is not a %s name; write %s%s", s, f.nameOf(), f.valid(), hint)
	case err != nil:
		return 0, fmt.Errorf("%s is not a number; write %s", s, f.valid())
	case n > f.max:
		return 0, fmt.Errorf("%s is above %d; %s", s, f.max, f.rangeHint())
	case n < f.min:
		return 0, fmt.Errorf("%s is below %d; %s", s, f.min, f.rangeHint())
	}
	return n, nil
}

// nameOf is what a name of this field names: a day or a month.
func (f *field) nameOf() string {
	if f == dow {
		return "day"
	}
	return f.name
}

// valid lists what the field accepts: its names and its numbers.
func (f *field) valid() string {
	nums := fmt.Sprintf("%d-%d", f.min, f.max)
	if f.names == nil {
		return nums
	}
	return strings.Join(f.names, " ") + " or " + nums
}

// rangeHint says the field's range, and for day-of-week where Sunday is,
// since other crons accept 7 for it.
func (f *field) rangeHint() string {
	hint := fmt.Sprintf("%s are %d-%d", f.all, f.min, f.max)
	if f.names != nil {
		hint += fmt.Sprintf(" (%s-%s)", f.names[0], f.names[len(f.names)-1])
	}
	if f == dow {
		hint += "; write 0 or SUN for Sunday"
	}
	return hint
}

// example is a valid range of the field, for messages.
func (f *field) example() string {
	switch f {
	case dow:
		return "MON-FRI"
	case month:
		return "JAN-MAR"
	}
	return fmt.Sprintf("%d-%d", f.min, f.min+5)
}

// fiveFieldForm returns the five-field expression a six-field one may have
// been meant as, "" unless it has the shape of five fields with one added
// (a year, or a habit from AWS schedules): the sixth field is * or ?, the
// first is not a per-second schedule (no * or /), the third is * or ? (as
// a five-field day-of-month mostly is; "30 0 8 * * *" means 08:00:30),
// and the first five fields parse as five.
func fiveFieldForm(fs []string) string {
	if len(fs) != 6 || !isStar(fs[5]) || !isStar(fs[2]) || strings.ContainsAny(fs[0], "*/") {
		return ""
	}
	form := strings.Join(fs[:5], " ")
	if check(form) != nil {
		return ""
	}
	return form
}

// Note returns how a valid six-field expression is read, field by field,
// and the five-field form it may have been meant as (see fiveFieldForm);
// "" for five fields and descriptors, whose reading is the usual one.
func Note(expr string) string {
	fs := strings.Fields(expr)
	if len(fs) != 6 || strings.HasPrefix(expr, "@") || check(expr) != nil {
		return ""
	}
	parts := []string{second.describe(fs[0]), minute.describe(fs[1]), hour.describe(fs[2])}
	// Either day field matches when both are set, as in robfig/cron and
	// traditional cron; a * one says nothing.
	switch days, weekdays := fs[3], fs[5]; {
	case isStar(days) && isStar(weekdays):
		parts = append(parts, "every day")
	case isStar(weekdays):
		parts = append(parts, dom.describe(days))
	case isStar(days):
		parts = append(parts, dow.describe(weekdays))
	default:
		parts = append(parts, dom.describe(days)+" or "+dow.describe(weekdays))
	}
	parts = append(parts, month.describe(fs[4]))
	note := "six fields are read as " + layout(six) + ": " + strings.Join(parts, ", ")
	if form := fiveFieldForm(fs); form != "" {
		note += fmt.Sprintf("; if you meant %s, drop the sixth field: %q", layout(five), form)
	}
	return note
}

func isStar(s string) bool { return s == "*" || s == "?" }

// describe says what a valid field selects, in words where it is short.
func (f *field) describe(text string) string {
	if isStar(text) {
		return f.every
	}
	if n, ok := strings.CutPrefix(text, "*/"); ok && f.names == nil && f != dom {
		return "every " + n + " " + f.all
	}
	label := f.all
	if !strings.ContainsAny(text, ",-/") {
		label = f.one
	}
	if words := f.words(text); words != "" {
		return label + " " + text + " (" + words + ")"
	}
	return label + " " + text
}

// words names the months or days of text, such as "January–May", or ""
// when the field has no names or text has steps.
func (f *field) words(text string) string {
	if f.long == nil || strings.ContainsAny(text, "/*?") {
		return ""
	}
	var out []string
	for item := range strings.SplitSeq(text, ",") {
		var ws []string
		for b := range strings.SplitSeq(item, "-") {
			v, err := f.value(b)
			if err != nil {
				return ""
			}
			ws = append(ws, f.long[v-f.min])
		}
		out = append(out, strings.Join(ws, "–"))
	}
	return strings.Join(out, ", ")
}

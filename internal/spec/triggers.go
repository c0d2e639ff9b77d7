package spec

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // validation must not depend on the zoneinfo of the machine

	"github.com/routines-dev/routines/internal/cronexpr"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/suggest"
)

var (
	overlaps      = []string{"skip", "queue", "allow"}
	catchups      = []string{"none", "one"}
	fileEvents    = []string{"create", "write", "remove", "rename"}
	hookProviders = []string{"github"}
)

func (v *validator) triggers() {
	for i := range v.r.Triggers {
		v.trigger("$.triggers["+strconv.Itoa(i)+"]", &v.r.Triggers[i])
	}
}

func (v *validator) trigger(p string, t *routine.Trigger) {
	var kinds []string
	for _, k := range triggerKinds {
		if v.given(p + "." + k) {
			kinds = append(kinds, k)
		}
	}
	switch {
	case len(kinds) == 0:
		v.errorf(p, "trigger does nothing: add one of %s", strings.Join(triggerKinds, ", "))
	case len(kinds) > 1:
		v.errorf(p, "a trigger has one kind, this one has %s: write one trigger per kind", strings.Join(kinds, " and "))
	}
	scheduled := slices.Contains(kinds, "cron") || slices.Contains(kinds, "every")
	if v.given(p + ".cron") {
		v.cron(p+".cron", t.Cron)
	}
	if t.Timezone != "" {
		if !slices.Contains(kinds, "cron") {
			v.errorf(p+".timezone", "timezone only applies to cron triggers")
		} else if _, err := time.LoadLocation(t.Timezone); err != nil || t.Timezone == "Local" {
			v.errorf(p+".timezone", "unknown time zone %q: use an IANA name such as Europe/Berlin, or UTC", t.Timezone)
		}
	}
	v.oneOf(p+".overlap", "overlap", t.Overlap, overlaps, scheduled)
	v.oneOf(p+".catchup", "catchup", t.Catchup, catchups, scheduled)
	if v.given(p+".every") && t.Every.D() < time.Second {
		v.errorf(p+".every", "every must be at least 1s, got %s", t.Every.D())
	}
	sc := &scope{trigger: true, env: v.envKeys(nil)}
	if w := t.Webhook; w != nil {
		switch {
		case w.Path == "":
			v.errorf(p+".webhook.path", "webhook.path is required, such as /support")
		case !strings.HasPrefix(w.Path, "/"):
			v.errorf(p+".webhook.path", "webhook.path must start with /, got %q", w.Path)
		}
		if w.Provider != "" && !slices.Contains(hookProviders, w.Provider) {
			v.errorf(p+".webhook.provider", "webhook.provider must be one of %s, got %q", strings.Join(hookProviders, ", "), w.Provider)
		}
		v.template(p+".webhook.secret", w.Secret, sc)
	}
	if f := t.File; f != nil {
		if strings.TrimSpace(f.Path) == "" {
			v.errorf(p+".file.path", "file.path is required, such as ./inbox")
		}
		if _, err := filepath.Match(f.Glob, ""); err != nil {
			v.errorf(p+".file.glob", "file.glob %q is not a valid pattern: %v", f.Glob, err)
		}
		for i, on := range f.On {
			if !slices.Contains(fileEvents, on) {
				v.errorf(p+".file.on["+strconv.Itoa(i)+"]", "file.on must name %s, got %q%s", strings.Join(fileEvents, ", "), on, suggest.DidYouMean(on, fileEvents))
			}
		}
	}
	if e := t.Event; e != nil {
		if strings.TrimSpace(e.Name) == "" {
			v.errorf(p+".event.name", "event.name is required, such as cpu.alert")
		} else if err := routine.CheckEventName(e.Name); err != nil {
			v.errorf(p+".event.name", "%v", err)
		}
		v.template(p+".event.dedupe", e.Dedupe, sc)
	}
	if c := t.SlackCommand; c != nil {
		v.slackCommand(p+".slack_command", c, sc)
	}
	if e := t.Email; e != nil {
		v.emailTrigger(p+".email", e, sc)
	}
}

// cron checks a cron expression and notes how six fields are read.
func (v *validator) cron(path, expr string) {
	if _, err := cronexpr.Parse(expr); err != nil {
		v.errorf(path, "cron %q: %v", expr, err)
		return
	}
	if note := cronexpr.Note(expr); note != "" {
		v.warnf(path, "cron %q: %s", expr, note)
	}
}

// oneOf checks an enum field of scheduled (cron and every) triggers.
func (v *validator) oneOf(path, key, val string, valid []string, scheduled bool) {
	switch {
	case val == "":
	case !scheduled:
		v.errorf(path, "%s only applies to cron and every triggers", key)
	case !slices.Contains(valid, val):
		v.errorf(path, "%s must be one of %s, got %q%s", key, strings.Join(valid, ", "), val, suggest.DidYouMean(val, valid))
	}
}

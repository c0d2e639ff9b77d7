package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/trigger"
)

// stopper is a trigger that runs in the background until stopped: a file
// Watcher, an EmailWatcher or a GmailWatcher.
type stopper interface{ Stop() }

// secretLookup resolves a secret a routine declares (secrets.Resolver.Lookup).
type secretLookup func(ctx context.Context, routineName string, ref routine.SecretRef) (string, error)

// startTriggers starts the file and email triggers of r.
func (rl *reloader) startTriggers(ctx context.Context, r *routine.Routine) []stopper {
	var ss []stopper
	for _, w := range startWatchers(ctx, []*routine.Routine{r}, rl.sink, rl.logger, rl.warn) {
		ss = append(ss, w)
	}
	if rl.mail != nil {
		ss = append(ss, rl.mail(ctx, r)...)
	}
	return ss
}

// emailStarter returns what starts the email triggers of a routine: an
// EmailWatcher (imap:) or a GmailWatcher (gmail:) each, whose cursor is in
// the routine's state in st and whose credential references resolve
// through lookup, and whose failures go to problems too.
func emailStarter(st store.Store, lookup secretLookup, sink trigger.Sink, logger *slog.Logger, warn io.Writer, problems trigger.Problems) func(context.Context, *routine.Routine) []stopper {
	cursors := stateCursors{st}
	return func(ctx context.Context, r *routine.Routine) []stopper {
		var ss []stopper
		for i, t := range r.Triggers {
			if t.Email == nil {
				continue
			}
			cfg := trigger.EmailConfig{
				Routine: r.Name, Trigger: i, Email: *t.Email,
				Resolve: triggerSecrets(r, lookup),
				Cursors: cursors, Sink: sink, Logger: logger, Problems: problems,
			}
			var w interface {
				stopper
				Start(context.Context) error
			}
			if t.Email.Gmail != nil {
				w = trigger.NewGmailWatcher(cfg)
			} else {
				w = trigger.NewEmailWatcher(cfg)
			}
			if err := w.Start(ctx); err != nil {
				fmt.Fprintf(warn, "warning: %s: email trigger %d is off: %v\n", r.Name, i, err)
				continue
			}
			ss = append(ss, w)
		}
		return ss
	}
}

// secretOnly matches a value that is one reference, {{NAME}}.
var secretOnly = regexp.MustCompile(`^\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$`)

// triggerSecrets returns the resolver of a trigger's credentials: {{NAME}}
// is a secret r declares, else an entry of its env; anything else is the
// value as written.
func triggerSecrets(r *routine.Routine, lookup secretLookup) func(context.Context, string) (string, error) {
	return func(ctx context.Context, v string) (string, error) {
		m := secretOnly.FindStringSubmatch(v)
		if m == nil {
			return v, nil
		}
		for _, s := range r.Secrets {
			if s.Name == m[1] {
				if lookup == nil {
					return "", fmt.Errorf("secret %s: no secret provider", s.Name)
				}
				return lookup(ctx, r.Name, s)
			}
		}
		if e, ok := r.Env[m[1]]; ok {
			return e, nil
		}
		return "", fmt.Errorf("%s is neither a declared secret nor an env entry of %s", m[1], r.Name)
	}
}

// stateCursors keeps email cursors in the routines' state.
type stateCursors struct{ st store.Store }

func (c stateCursors) Load(ctx context.Context, name, key string) (string, bool, error) {
	return c.st.StateGet(ctx, &store.StateGetParams{Routine: name, Key: key, Now: time.Now()})
}

func (c stateCursors) Save(ctx context.Context, name, key, value string) error {
	_, err := c.st.StatePut(ctx, &store.StatePutParams{Routine: name, Key: key, Value: value, Now: time.Now()})
	return err
}

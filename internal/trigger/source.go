package trigger

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/routines-dev/routines/internal/routine"
)

// Source turns the triggers of one family of kinds (the schedules, file
// events, mail) into firings for the routines it is given. main registers
// the families a binary has (NewSource); a daemon builds one Source of
// each and hands it every routine it serves, so that a new trigger kind
// touches neither the command line nor the daemon.
type Source interface {
	// Start starts the source; Set may be called before or after.
	Start(ctx context.Context) error
	// Stop stops every trigger of the source; none fires after it returns.
	Stop(ctx context.Context) error
	// Set starts r's triggers of the source's kinds, replacing those r
	// had. A trigger that cannot start now (its path is missing) is left
	// off and told to SourceEnv.Warn; an error means r's triggers are
	// invalid, and those it had stay.
	Set(ctx context.Context, r *routine.Routine) error
	// Remove stops the triggers of the routine called name.
	Remove(name string)
}

// NewSource builds the Source of a family of trigger kinds from what the
// daemon gives it; main registers one per family.
type NewSource func(env SourceEnv) Source

// SourceEnv is what a daemon gives its sources.
type SourceEnv struct {
	// Sink receives every firing.
	Sink   Sink
	Logger *slog.Logger
	// Warn tells the operator of a trigger left off.
	Warn io.Writer
	// Problems hears of the failures of triggers that retry on their own.
	Problems Problems
	// Cursors keeps the place of triggers that read a stream (mail).
	Cursors CursorStore
	// Secret resolves a secret a routine declares, for the credentials
	// of its triggers; nil: none resolves.
	Secret SecretLookup
	// Active, Skipped and LastFire are those of SchedulerConfig.
	Active   func(routine string) bool
	Skipped  func(routine, kind string)
	LastFire func(routine string, trigger int) time.Time
}

// SecretLookup resolves a secret routine rt declares, in its namespace.
type SecretLookup func(ctx context.Context, rt *routine.Routine, ref routine.SecretRef) (string, error)

// Builtin returns the families of trigger kinds this package has, in the
// order a daemon starts them, for main to register.
func Builtin() []NewSource { return []NewSource{NewSchedules, NewFiles, NewMail} }

// NewSchedules is the Source of cron: and every: triggers: one Scheduler
// for every routine.
func NewSchedules(env SourceEnv) Source {
	return schedules{NewScheduler(SchedulerConfig{Sink: env.Sink, Logger: env.Logger, Active: env.Active, Skipped: env.Skipped, LastFire: env.LastFire})}
}

type schedules struct{ s *Scheduler }

func (s schedules) Start(ctx context.Context) error { return s.s.Start(ctx) }
func (s schedules) Stop(context.Context) error      { s.s.Stop(); return nil }
func (s schedules) Remove(name string)              { s.s.Set(name, nil) }
func (s schedules) Set(_ context.Context, r *routine.Routine) error {
	return s.s.Set(r.Name, r.Triggers)
}

// stopper is a trigger running in the background until stopped.
type stopper interface{ Stop() }

// perRoutine is a Source whose triggers run one goroutine each: start
// starts those of a routine, and Set replaces them whole.
type perRoutine struct {
	env   SourceEnv
	start func(ctx context.Context, r *routine.Routine, i int, t routine.Trigger) (stopper, error)
	what  string // the kind, as the warnings name it

	mu      sync.Mutex
	running map[string][]stopper
}

func (p *perRoutine) Start(context.Context) error { return nil }

func (p *perRoutine) Stop(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, ss := range p.running {
		stopAll(ss)
		delete(p.running, name)
	}
	return nil
}

func (p *perRoutine) Remove(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	stopAll(p.running[name])
	delete(p.running, name)
}

func (p *perRoutine) Set(ctx context.Context, r *routine.Routine) error {
	var ss []stopper
	for i, t := range r.Triggers {
		s, err := p.start(ctx, r, i, t)
		if err != nil {
			fmt.Fprintf(p.env.Warn, "warning: %s: %s trigger %d is off: %v\n", r.Name, p.what, i, err)
			continue
		}
		if s != nil {
			ss = append(ss, s)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	stopAll(p.running[r.Name])
	if len(ss) == 0 {
		delete(p.running, r.Name)
	} else {
		p.running[r.Name] = ss
	}
	return nil
}

func stopAll(ss []stopper) {
	for _, s := range ss {
		s.Stop()
	}
}

func newPerRoutine(env SourceEnv, what string, start func(ctx context.Context, r *routine.Routine, i int, t routine.Trigger) (stopper, error)) *perRoutine {
	if env.Warn == nil {
		env.Warn = io.Discard
	}
	return &perRoutine{env: env, what: what, start: start, running: map[string][]stopper{}}
}

// NewFiles is the Source of file: triggers: a Watcher each. A trigger
// whose path cannot be watched (it does not exist) is left off; the
// other triggers of the routine work.
func NewFiles(env SourceEnv) Source {
	return newPerRoutine(env, "file", func(ctx context.Context, r *routine.Routine, i int, t routine.Trigger) (stopper, error) {
		if t.File == nil {
			return nil, nil
		}
		w := NewWatcher(WatcherConfig{Routine: r.Name, Trigger: i, Dir: r.Dir, File: *t.File, Sink: env.Sink, Logger: env.Logger})
		if err := w.Start(ctx); err != nil {
			return nil, err
		}
		return w, nil
	})
}

// NewMail is the Source of email: triggers: an EmailWatcher (imap:) or a
// GmailWatcher (gmail:) each, whose cursor is kept in env.Cursors and
// whose credentials resolve through env.Secret (Credentials).
func NewMail(env SourceEnv) Source {
	return newPerRoutine(env, "email", func(ctx context.Context, r *routine.Routine, i int, t routine.Trigger) (stopper, error) {
		if t.Email == nil {
			return nil, nil
		}
		cfg := EmailConfig{
			Routine: r.Name, Trigger: i, Email: *t.Email,
			Resolve: Credentials(r, env.Secret),
			Cursors: env.Cursors, Sink: env.Sink, Logger: env.Logger, Problems: env.Problems,
		}
		var w interface {
			stopper
			Start(context.Context) error
		}
		if t.Email.Gmail != nil {
			w = NewGmailWatcher(cfg)
		} else {
			w = NewEmailWatcher(cfg)
		}
		if err := w.Start(ctx); err != nil {
			return nil, err
		}
		return w, nil
	})
}

// secretOnly matches a value that is one reference, {{NAME}}.
var secretOnly = regexp.MustCompile(`^\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$`)

// Credentials returns the resolver of the credentials of r's triggers:
// {{NAME}} is a secret r declares, else an entry of its env; anything else
// is the value as written.
func Credentials(r *routine.Routine, lookup SecretLookup) func(context.Context, string) (string, error) {
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
				return lookup(ctx, r, s)
			}
		}
		if e, ok := r.Env[m[1]]; ok {
			return e, nil
		}
		return "", fmt.Errorf("%s is neither a declared secret nor an env entry of %s", m[1], r.Name)
	}
}

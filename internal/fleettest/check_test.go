//go:build linux

package fleettest

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/routines-dev/routines/internal/routine"
)

// proof is what the checks read: the store, its audit tables, the
// effects log, and what the load and the chaos did.
type proof struct {
	f          *fleet
	runs       map[string]*runRow
	steps      map[stepKey]*stepRow
	runEvents  []runEvent // in the order of the database
	stepWrites map[stepKey][]stepWrite
	execs      map[stepKey][]*execution // in the order they began
	calls      []*call
	chaos      []chaosEvent
	ticksEnd   time.Time
}

type runRow struct {
	id, routine, state, worker, dedupeKey, error string
	attempt                                      int
	queuedAt                                     time.Time
	startedAt, finishedAt                        *time.Time
}

type stepKey struct{ run, step string }

type stepRow struct {
	state, token string
}

type runEvent struct {
	run, routine, oldState, newState, oldWorker, newWorker string
}

type stepWrite struct {
	token string
	at    time.Time
}

// execution is one execution of a step, from the effects log: a begin,
// and an end unless it was killed.
type execution struct {
	token      string
	begin, end time.Time // end zero: killed before it ended
}

// read reads the store and the effects log.
func (f *fleet) read() *proof {
	f.t.Helper()
	ctx := context.Background()
	p := &proof{f: f, runs: map[string]*runRow{}, steps: map[stepKey]*stepRow{},
		stepWrites: map[stepKey][]stepWrite{}, execs: map[stepKey][]*execution{}}
	query := func(sql string, scan func(pgx.Rows) error) {
		rows, err := f.pool.Query(ctx, sql)
		if err != nil {
			f.t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				f.t.Fatal(err)
			}
		}
		if err := rows.Err(); err != nil {
			f.t.Fatal(err)
		}
	}
	query(`SELECT id, routine, state, worker, dedupe_key, coalesce(error, ''), attempt, queued_at, started_at, finished_at FROM runs`, func(rows pgx.Rows) error {
		r := &runRow{}
		err := rows.Scan(&r.id, &r.routine, &r.state, &r.worker, &r.dedupeKey, &r.error, &r.attempt, &r.queuedAt, &r.startedAt, &r.finishedAt)
		p.runs[r.id] = r
		return err
	})
	query(`SELECT run_id, step_id, state, coalesce(outputs, '') FROM step_runs WHERE phase = 'main'`, func(rows pgx.Rows) error {
		var k stepKey
		var s stepRow
		var outputs string
		err := rows.Scan(&k.run, &k.step, &s.state, &outputs)
		s.token = token(outputs)
		p.steps[k] = &s
		return err
	})
	query(`SELECT run_id, routine, old_state, new_state, old_worker, new_worker FROM proof_run_events ORDER BY seq`, func(rows pgx.Rows) error {
		var e runEvent
		err := rows.Scan(&e.run, &e.routine, &e.oldState, &e.newState, &e.oldWorker, &e.newWorker)
		p.runEvents = append(p.runEvents, e)
		return err
	})
	query(`SELECT run_id, step_id, coalesce(outputs, ''), at FROM proof_step_events WHERE phase = 'main' ORDER BY seq`, func(rows pgx.Rows) error {
		var k stepKey
		var w stepWrite
		var outputs string
		err := rows.Scan(&k.run, &k.step, &outputs, &w.at)
		w.token = token(outputs)
		p.stepWrites[k] = append(p.stepWrites[k], w)
		return err
	})
	data, err := os.ReadFile(f.effects())
	if err != nil {
		f.t.Fatal(err)
	}
	byToken := map[string]*execution{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		fields := strings.Fields(line)
		if len(fields) != 5 {
			f.t.Fatalf("effects log: malformed line %q", line)
		}
		at := epoch(f.t, fields[4])
		k, tok := stepKey{fields[1], fields[2]}, fields[3]
		switch fields[0] {
		case "begin":
			x := &execution{token: tok, begin: at}
			byToken[tok] = x
			p.execs[k] = append(p.execs[k], x)
		case "end":
			if x := byToken[tok]; x != nil {
				x.end = at
			} else {
				f.t.Errorf("effects log: an end without a begin: %q", line)
			}
		}
	}
	return p
}

// token is the token output of a step record's outputs.
func token(outputs string) string {
	var m map[string]string
	json.Unmarshal([]byte(outputs), &m)
	return m["token"]
}

// epoch parses bash's $EPOCHREALTIME, seconds with microseconds.
func epoch(t *testing.T, s string) time.Time {
	sec, frac, _ := strings.Cut(s, ".")
	a, err1 := strconv.ParseInt(sec, 10, 64)
	b, err2 := strconv.ParseInt((frac + "000000")[:6], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("effects log: bad time %q", s)
	}
	return time.Unix(a, b*1000)
}

// report collects the violations of one property, and says the first few.
type report struct {
	t    *testing.T
	name string
	n    int
}

func (r *report) errorf(format string, args ...any) {
	r.t.Helper()
	if r.n++; r.n <= 10 {
		r.t.Errorf(r.name+": "+format, args...)
	}
}

func (r *report) done() {
	r.t.Helper()
	if r.n > 10 {
		r.t.Errorf("%s: %d violations in all", r.name, r.n)
	}
}

// check asserts every property of the proof and logs its figures.
func (p *proof) check(t *testing.T) {
	p.checkAccepted(t)
	p.checkEndedOnce(t)
	p.checkSteps(t)
	p.checkConcurrency(t)
	p.checkTicks(t)
	p.checkEvents(t)
	p.checkOutage(t)
}

// checkAccepted: every run an API call was answered with exists and
// succeeded, and so did every other run (the ticks).
func (p *proof) checkAccepted(t *testing.T) {
	r := &report{t: t, name: "accepted runs"}
	accepted := map[string]bool{}
	for _, c := range p.calls {
		for _, run := range c.runs {
			accepted[run.RunID] = true
			if p.runs[run.RunID] == nil {
				r.errorf("run %s of %s, answered by %s at t=%s, is not in the store", run.RunID, run.Routine, c.server, c.sent)
			}
		}
	}
	r.done()
	r = &report{t: t, name: "final states"}
	byRoutine := map[string]int{}
	for _, run := range p.runs {
		byRoutine[run.routine]++
		if run.state != "succeeded" {
			r.errorf("run %s of %s ended %s (attempt %d, worker %s): %s", run.id, run.routine, run.state, run.attempt, run.worker, run.error)
		}
	}
	r.done()
	t.Logf("runs: %d in the store (%v), %d of them answered to API calls", len(p.runs), byRoutine, len(accepted))
}

// checkEndedOnce: each run reached a final state once, and never left it.
func (p *proof) checkEndedOnce(t *testing.T) {
	r := &report{t: t, name: "ended once"}
	final := func(s string) bool { return routine.State(s).Final() }
	ends := map[string]int{}
	takeovers := 0
	for _, e := range p.runEvents {
		switch {
		case final(e.oldState):
			r.errorf("run %s of %s left its final state %s for %s (worker %q)", e.run, e.routine, e.oldState, e.newState, e.newWorker)
		case final(e.newState):
			ends[e.run]++
		case e.oldState == "running" && e.newState == "running" && e.oldWorker != e.newWorker:
			takeovers++
		}
	}
	for id, run := range p.runs {
		if ends[id] != 1 {
			r.errorf("run %s of %s reached a final state %d times", id, run.routine, ends[id])
		}
	}
	r.done()
	t.Logf("runs taken over from a worker whose lease ran out: %d", takeovers)
}

// checkSteps: each step of a succeeded run has a succeeded record, which
// records an execution that ran to its end; no two executions recorded a
// step succeeded; and no execution of a step began after its success was
// recorded.
func (p *proof) checkSteps(t *testing.T) {
	r := &report{t: t, name: "step records"}
	again := 0
	for id, run := range p.runs {
		if run.state != "succeeded" {
			continue
		}
		for _, step := range routineSteps[run.routine] {
			k := stepKey{id, step}
			rec := p.steps[k]
			if rec == nil || rec.state != "succeeded" {
				r.errorf("run %s of %s succeeded, its step %s is recorded %+v", id, run.routine, step, rec)
				continue
			}
			if i := slices.IndexFunc(p.execs[k], func(x *execution) bool { return x.token == rec.token }); i < 0 || p.execs[k][i].end.IsZero() {
				r.errorf("step %s of run %s is recorded succeeded by execution %q, which did not run to its end", step, id, rec.token)
			}
			again += len(p.execs[k]) - 1
		}
	}
	r.done()
	r = &report{t: t, name: "no step recorded finished runs twice"}
	for k, writes := range p.stepWrites {
		tokens := map[string]bool{}
		for _, w := range writes {
			tokens[w.token] = true
		}
		if len(tokens) > 1 {
			r.errorf("step %s of run %s was recorded succeeded by %d executions: %v", k.step, k.run, len(tokens), tokens)
		}
		recorded := writes[0]
		for _, x := range p.execs[k] {
			if x.token != recorded.token && x.begin.After(recorded.at) {
				r.errorf("step %s of run %s, recorded succeeded at %s, began again at %s", k.step, k.run,
					recorded.at.Format(time.StampMicro), x.begin.Format(time.StampMicro))
			}
		}
	}
	r.done()
	t.Logf("steps executed again after an interruption (at least once, none recorded finished): %d", again)
}

// checkConcurrency: no more than 2 runs of limited at once, by the
// executions of its step and by the runs' recorded intervals.
func (p *proof) checkConcurrency(t *testing.T) {
	type edge struct {
		at time.Time
		d  int
	}
	most := func(edges []edge) (int, time.Time) {
		slices.SortFunc(edges, func(a, b edge) int {
			if c := a.at.Compare(b.at); c != 0 {
				return c
			}
			return a.d - b.d // an end before a begin at the same instant
		})
		n, top, when := 0, 0, time.Time{}
		for _, e := range edges {
			if n += e.d; n > top {
				top, when = n, e.at
			}
		}
		return top, when
	}
	var execs, recorded []edge
	for k, xs := range p.execs {
		if run := p.runs[k.run]; run == nil || run.routine != "limited" {
			continue
		}
		for _, x := range xs {
			end := x.end
			if end.IsZero() { // killed: it ended at the latest when it would have
				end = x.begin.Add(limitedSleep)
			}
			execs = append(execs, edge{x.begin, 1}, edge{end, -1})
		}
	}
	for _, run := range p.runs {
		if run.routine == "limited" && run.startedAt != nil && run.finishedAt != nil {
			recorded = append(recorded, edge{*run.startedAt, 1}, edge{*run.finishedAt, -1})
		}
	}
	n, at := most(execs)
	if n > 2 {
		t.Errorf("concurrency.max 2 of limited exceeded: %d of its steps executed at once at %s", n, at.Format(time.StampMicro))
	}
	m, at2 := most(recorded)
	if m > 2 {
		t.Errorf("concurrency.max 2 of limited exceeded: %d of its runs recorded running at once at %s", m, at2.Format(time.StampMicro))
	}
	t.Logf("limited: at most %d steps executing at once, %d runs recorded running at once (max 2)", n, m)
}

// checkTicks: each schedule made one run a tick across both servers: no
// two runs of one tick (dedupe key), no more runs than ticks, and no
// fewer but for the ticks without a store.
func (p *proof) checkTicks(t *testing.T) {
	down := p.postgres().until - p.postgres().at
	for name, period := range schedules {
		var first time.Time
		keys := map[string]int{}
		n := 0
		for _, run := range p.runs {
			if run.routine != name {
				continue
			}
			n++
			keys[run.dedupeKey]++
			if first.IsZero() || run.queuedAt.Before(first) {
				first = run.queuedAt
			}
		}
		for k, c := range keys {
			if c > 1 || k == "" {
				t.Errorf("%s: %d runs with dedupe key %q", name, c, k)
			}
		}
		span := p.ticksEnd.Sub(first)
		ticks := float64(span) / float64(period)
		if float64(n) > ticks+1 {
			t.Errorf("%s: %d runs in %.1f s, %.1f ticks of %s: some ticks made more than one run", name, n, span.Seconds(), ticks, period)
		}
		if low := float64(span-down)/float64(period) - 3; float64(n) < low {
			t.Errorf("%s: %d runs in %.1f s, %.1f ticks of %s, %.1f s of them without PostgreSQL: want at least %.0f", name, n, span.Seconds(), ticks, period, down.Seconds(), low)
		}
		t.Logf("%s: %d runs in %.1f s, %.1f ticks of %s, %.1f s of them without PostgreSQL", name, n, span.Seconds(), ticks, period, down.Seconds())
	}
}

// checkEvents: the events of a host, sent to either server, made one run:
// every answer names it, and no other run has its key. (An event that made
// its host's run but was answered 500, PostgreSQL going down, leaves a run
// no answer named.)
func (p *proof) checkEvents(t *testing.T) {
	r := &report{t: t, name: "events deduplicated"}
	byHost := map[string]string{}
	events, dups := 0, 0
	for _, c := range p.calls {
		if c.host == "" || c.status != 202 {
			continue
		}
		events++
		if len(c.runs) != 1 {
			r.errorf("event of %s answered with %d runs, want 1", c.host, len(c.runs))
			continue
		}
		if c.runs[0].Deduplicated {
			dups++
		}
		if prev, ok := byHost[c.host]; ok && prev != c.runs[0].RunID {
			r.errorf("events of %s made runs %s and %s", c.host, prev, c.runs[0].RunID)
		}
		byHost[c.host] = c.runs[0].RunID
	}
	alerts, keys := 0, map[string]string{}
	for _, run := range p.runs {
		if run.routine != "alert" {
			continue
		}
		alerts++
		if other, ok := keys[run.dedupeKey]; ok || run.dedupeKey == "" {
			r.errorf("runs %s and %s of alert have dedupe key %q", other, run.id, run.dedupeKey)
		}
		keys[run.dedupeKey] = run.id
	}
	for host, id := range byHost {
		if run := p.runs[id]; run == nil || run.dedupeKey != host {
			r.errorf("events of %s answered with run %s, whose dedupe key is not %s", host, id, host)
		}
	}
	r.done()
	t.Logf("events: %d accepted for %d hosts, %d deduplicated, %d runs", events, len(byHost), dups, alerts)
}

// postgres is the outage of PostgreSQL.
func (p *proof) postgres() chaosEvent {
	i := slices.IndexFunc(p.chaos, func(ev chaosEvent) bool { return ev.what == "postgres stopped" })
	return p.chaos[i]
}

// checkOutage: API calls sent while PostgreSQL was down failed with 5xx
// and fast (not hanging: within 10 s, on a loaded machine); the servers accepted calls again soon after it was back; the
// other calls succeeded but those to a killed server, which were refused.
// A call under way as PostgreSQL stopped, or sent in the 5 s after it
// accepted connections again, may have failed.
func (p *proof) checkOutage(t *testing.T) {
	r := &report{t: t, name: "API calls"}
	pg := p.postgres()
	var down []chaosEvent // servers killed
	for _, ev := range p.chaos {
		if strings.HasPrefix(ev.what, "kill server") {
			down = append(down, ev)
		}
	}
	back := map[string]time.Duration{} // each server's first 202 answer after the restart
	failed, slowest := 0, time.Duration(0)
	for _, c := range p.calls {
		end := c.sent + c.took
		killed := slices.ContainsFunc(down, func(ev chaosEvent) bool {
			return ev.what == "kill "+c.server && end >= ev.at && c.sent <= ev.until
		})
		if c.status >= 500 {
			failed++
			slowest = max(slowest, c.took)
		}
		switch {
		case killed:
		case c.sent >= pg.stopped && c.sent < pg.restart:
			if c.status < 500 {
				r.errorf("call to %s at t=%s, PostgreSQL down: %d %v, want 5xx", c.server, c.sent, c.status, c.err)
			}
		case c.status == 202:
			if after := end - pg.until; c.sent >= pg.until && (back[c.server] == 0 || after < back[c.server]) {
				back[c.server] = after
			}
		case end >= pg.at && c.sent < pg.until+5*time.Second && c.status >= 500:
		default:
			r.errorf("call to %s at t=%s took %s: %d %v", c.server, c.sent, c.took, c.status, c.err)
		}
	}
	r.done()
	if slowest > 10*time.Second {
		t.Errorf("API calls while PostgreSQL was down: the slowest failed after %s, want within 10s", slowest)
	}
	if len(back) != 2 {
		t.Errorf("after PostgreSQL was back, only %v accepted calls", back)
	}
	// The first step that began after PostgreSQL was back: the workers
	// claim again.
	up := p.f.start.Add(pg.until)
	var executing time.Duration
	for _, xs := range p.execs {
		for _, x := range xs {
			if d := x.begin.Sub(up); d >= 0 && (executing == 0 || d < executing) {
				executing = d
			}
		}
	}
	t.Logf("PostgreSQL stopping t=%s, down t=%s..%s, accepting t=%s: %d calls failed 5xx, the slowest in %s; after it accepted connections, the first call accepted again %v, the first step began %s",
		pg.at.Round(time.Millisecond), pg.stopped.Round(time.Millisecond), pg.restart.Round(time.Millisecond), pg.until.Round(time.Millisecond),
		failed, slowest.Round(time.Millisecond), back, executing.Round(time.Millisecond))
}

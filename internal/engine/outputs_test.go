package engine_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/engine"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/spec"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/steps"
	"github.com/routines-dev/routines/internal/store"
)

// catalog is the routines a routine step may call, by name.
type catalog map[string]*routine.Routine

func (c catalog) Get(name string) (*routine.Routine, bool) {
	r, ok := c[name]
	return r, ok
}

// setupReal returns an engine with the real run, http, sql and routine
// kinds, in a project of its own whose routines called by routine steps
// are subs (name → yaml).
func setupReal(t *testing.T, subs map[string]string) (*engine.Engine, *testBundle) {
	t.Helper()
	b := newBundle(t)
	cat := catalog{}
	for name, yaml := range subs {
		sub := filepath.Join(b.dir, name)
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		r, err := spec.Parse("routine.yaml", []byte(yaml), sub)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		cat[name] = r
	}
	e := engine.New(engine.Config{
		Store:    b.store,
		Kinds:    stepkind.NewRegistry(steps.RunKind{}, steps.HTTPKind{}, steps.SQLKind{}, steps.RoutineKind{}),
		StateDir: filepath.Join(b.dir, ".routines"),
		Routines: cat,
	})
	return e, b
}

// byID indexes step records of the main steps by id.
func byID(recs []*routine.StepRun) map[string]*routine.StepRun {
	m := map[string]*routine.StepRun{}
	for _, r := range recs {
		if r.Phase == routine.PhaseMain {
			m[r.ID] = r
		}
	}
	return m
}

// ticketServer answers GET /ticket with JSON holding hostile values, and
// records every other request it gets.
type ticketServer struct {
	*httptest.Server
	mu       sync.Mutex
	tickets  int
	requests []*http.Request
}

// hostile is a value meant to become code or structure wherever it lands:
// quotes, a command substitution, backquotes, a line break with a header
// after it.
const hostile = "x\"'; $(touch pwned) `touch pwned2`\r\nX-Injected: yes"

const ticketJSON = `{"id": 7, "owner": {"email": "ada@example.com"}, "tags": ["a", "b"], "ratio": 0.25,
	"big": 12345678901234567890, "path": "../../admin", "evil": "x\"'; $(touch pwned) ` + "`touch pwned2`" + `\r\nX-Injected: yes"}`

// ticketText is ticketJSON as a template renders it: compact, keys
// sorted, the line break escaped.
const ticketText = `{"big":12345678901234567890,"evil":"x\"'; $(touch pwned) ` + "`touch pwned2`" + `\r\nX-Injected: yes",` +
	`"id":7,"owner":{"email":"ada@example.com"},"path":"../../admin","ratio":0.25,"tags":["a","b"]}`

func newTicketServer(t *testing.T) *ticketServer {
	s := &ticketServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.URL.Path == "/ticket" {
			s.tickets++
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, ticketJSON)
			return
		}
		s.requests = append(s.requests, r.Clone(context.Background()))
		io.WriteString(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *ticketServer) seen() []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*http.Request(nil), s.requests...)
}

// TestHTTPJSONNavigated runs an http step against a loopback server whose
// JSON later steps navigate, in if: conditions, a run line, a url and
// headers, with hostile values in it that stay data.
func TestHTTPJSONNavigated(t *testing.T) {
	t.Parallel()
	e, b := setupReal(t, nil)
	srv := newTicketServer(t)
	run, recs := b.run(t, t.Context(), e, `
name: navigate
env: { BASE: "`+srv.URL+`" }
steps:
  - id: t
    http: { url: "{{ env.BASE }}/ticket" }
  - id: use
    if: steps.t.outputs.json.id == 7 && len(steps.t.outputs.json.tags) == 2 && steps.t.outputs.headers["content-type"] == "application/json"
    run: |
      echo "email={{ steps.t.outputs.json.owner.email }}" >> "$ROUTINES_OUTPUT"
      echo "big={{ steps.t.outputs.json.big }} tag={{ steps.t.outputs.json.tags[-1] }} old={{ fromJSON(steps.t.outputs.json).id }}" >> "$ROUTINES_OUTPUT"
      printf 'evil<<END_OF_VALUE\n%s\nEND_OF_VALUE\n' "{{ steps.t.outputs.json.evil }}" >> "$ROUTINES_OUTPUT"
      printf 'whole<<END_OF_VALUE\n%s\nEND_OF_VALUE\n' {{ steps.t.outputs.json }} >> "$ROUTINES_OUTPUT"
  - id: skipped
    if: steps.t.outputs.json.id != 7
    run: touch ran
  - id: post
    http:
      url: "{{ env.BASE }}/items/{{ steps.t.outputs.json.path }}?q={{ steps.t.outputs.json.evil }}&all={{ steps.t.outputs.json }}"
      headers: { X-Ticket: "{{ steps.t.outputs.json }}" }
  - id: header
    http:
      url: "{{ env.BASE }}/items/header"
      headers: { X-Evil: "{{ steps.t.outputs.json.evil }}" }
`)
	got := byID(recs)
	if got["use"].State != routine.StateSucceeded || got["skipped"].State != routine.StateSkipped || got["post"].State != routine.StateSucceeded {
		t.Fatalf("steps %s, error %+v", stepStates(recs), run.Error)
	}
	want := routine.Outputs{
		"email": "ada@example.com",
		"big":   "12345678901234567890 tag=b old=7",
		// The outputs file reads a CR LF as a line break.
		"evil":  "x\"'; $(touch pwned) `touch pwned2`\nX-Injected: yes",
		"whole": ticketText,
	}
	if !reflect.DeepEqual(got["use"].Outputs, want) {
		t.Errorf("use outputs\n%#v\nwant\n%#v", got["use"].Outputs, want)
	}
	for _, f := range []string{"pwned", "pwned2", "ran"} {
		if _, err := os.Stat(filepath.Join(b.dir, f)); err == nil {
			t.Errorf("%s exists: a value became code, or a skipped step ran", f)
		}
	}
	// A line break in a header value fails the step before anything is
	// sent; the JSON of the whole answer has it escaped, and goes.
	if run.State != routine.StateFailed || run.Error.Step != "header" || run.Error.Code != routine.CodeUnsafeValue {
		t.Fatalf("run %s, error %+v: want the header step to fail with unsafe_value", run.State, run.Error)
	}
	seen := srv.seen()
	if len(seen) != 1 {
		t.Fatalf("the server got %d requests besides /ticket, want 1 (the header step sends nothing)", len(seen))
	}
	r := seen[0]
	if !strings.HasPrefix(r.RequestURI, "/items/..%2F..%2Fadmin?q=") || r.URL.Query().Get("q") != hostile || r.URL.Query().Get("all") != ticketText {
		t.Errorf("request %s: the path must stay one segment and the query values whole", r.RequestURI)
	}
	if got := r.Header.Get("X-Ticket"); got != ticketText || r.Header.Get("X-Injected") != "" {
		t.Errorf("X-Ticket %q, X-Injected %q", got, r.Header.Get("X-Injected"))
	}
}

// TestSQLRowsNavigated reads rows of a real SQLite file in if:, a run line
// and the params of another query.
func TestSQLRowsNavigated(t *testing.T) {
	t.Parallel()
	e, b := setupReal(t, nil)
	run, recs := b.run(t, t.Context(), e, `
name: rows
steps:
  - id: setup
    sql:
      db: app.db
      query: |
        CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, score REAL);
        INSERT INTO users VALUES (1, 'ada@example.com', 9.5), (2, 'bob@example.com', 7)
  - id: q
    sql: { db: app.db, query: "SELECT id, email, score FROM users ORDER BY id" }
  - id: use
    if: len(steps.q.outputs.rows) == 2 && steps.q.outputs.rows[1].score == 7 && steps.q.outputs.rows[0].score > 9
    run: |
      echo "first={{ steps.q.outputs.rows[0].email }}" >> "$ROUTINES_OUTPUT"
      echo "emails={{ join(map(steps.q.outputs.rows, .email), ',') }}" >> "$ROUTINES_OUTPUT"
      echo "rows={{ steps.q.outputs.rows }}" >> "$ROUTINES_OUTPUT"
  - id: one
    sql: { db: app.db, query: "SELECT email FROM users WHERE id = ?", params: ["{{ steps.q.outputs.rows[1].id }}"] }
`)
	if run.State != routine.StateSucceeded {
		t.Fatalf("run %s: %+v", run.State, run.Error)
	}
	got := byID(recs)
	want := routine.Outputs{
		"first":  "ada@example.com",
		"emails": "ada@example.com,bob@example.com",
		"rows":   `[{"email":"ada@example.com","id":1,"score":9.5},{"email":"bob@example.com","id":2,"score":7}]`,
	}
	if !reflect.DeepEqual(got["use"].Outputs, want) {
		t.Errorf("use outputs %#v, want %#v", got["use"].Outputs, want)
	}
	// Stored as structure: what `routines show -o json` writes.
	wantRows := []any{
		map[string]any{"id": 1, "email": "ada@example.com", "score": 9.5},
		map[string]any{"id": 2, "email": "bob@example.com", "score": 7},
	}
	if !reflect.DeepEqual(got["q"].Outputs["rows"], wantRows) {
		t.Errorf("stored rows %#v", got["q"].Outputs["rows"])
	}
	if !reflect.DeepEqual(got["one"].Outputs["rows"], []any{map[string]any{"email": "bob@example.com"}}) {
		t.Errorf("rows of the query with a navigated param: %#v", got["one"].Outputs["rows"])
	}
}

// TestSubRunOutputsNavigated calls a routine whose steps leave structure
// and text, and navigates its outputs.
func TestSubRunOutputsNavigated(t *testing.T) {
	t.Parallel()
	srv := newTicketServer(t)
	e, b := setupReal(t, map[string]string{"fetch": `
name: fetch
steps:
  - id: get
    http: { url: "` + srv.URL + `/ticket" }
  - id: note
    run: echo 'note={"seen":true}' >> "$ROUTINES_OUTPUT"
`})
	run, recs := b.run(t, t.Context(), e, `
name: caller
steps:
  - id: sub
    routine: { name: fetch }
  - id: use
    if: steps.sub.outputs.json.owner.email == "ada@example.com" && steps.sub.outputs.state == "succeeded"
    run: echo "got={{ steps.sub.outputs.json.tags[0] }} {{ fromJSON(steps.sub.outputs.note).seen }} {{ steps.sub.outputs.status }}" >> "$ROUTINES_OUTPUT"
`)
	if run.State != routine.StateSucceeded {
		t.Fatalf("run %s: %+v", run.State, run.Error)
	}
	got := byID(recs)
	if use := got["use"]; use.State != routine.StateSucceeded || use.Outputs["got"] != "a true 200" {
		t.Fatalf("use %s, outputs %#v", use.State, use.Outputs)
	}
	if owner, _ := got["sub"].Outputs["json"].(map[string]any)["owner"].(map[string]any); owner["email"] != "ada@example.com" {
		t.Errorf("the routine step's stored json %#v", got["sub"].Outputs["json"])
	}
}

// TestResumeKeepsStructuredOutputs runs a routine, then resumes a crashed
// run of it from the first run's checkpointed http step: the step after
// it sees the same values, of the same types, without a second request.
func TestResumeKeepsStructuredOutputs(t *testing.T) {
	t.Parallel()
	e, b := setupReal(t, nil)
	srv := newTicketServer(t)
	yaml := `
name: resume
steps:
  - id: t
    http: { url: "` + srv.URL + `/ticket" }
  - id: use
    run: |
      echo "id={{ steps.t.outputs.json.id }} {{ type(steps.t.outputs.json.id) }} {{ steps.t.outputs.json.ratio }} {{ type(steps.t.outputs.json.ratio) }}" >> "$ROUTINES_OUTPUT"
      echo "more={{ steps.t.outputs.json.big }} {{ len(steps.t.outputs.json.tags) }} {{ steps.t.outputs.json.owner.email }} {{ steps.t.outputs.headers['content-type'] }}" >> "$ROUTINES_OUTPUT"
      echo "whole={{ steps.t.outputs.json }}" >> "$ROUTINES_OUTPUT"
`
	first, recs := b.run(t, t.Context(), e, yaml)
	if first.State != routine.StateSucceeded {
		t.Fatalf("first run %s: %+v", first.State, first.Error)
	}
	before := byID(recs)
	if before["use"].Outputs["id"] != "7 int 0.25 float" {
		t.Fatalf("first run: use outputs %#v", before["use"].Outputs)
	}
	// The crash: t done and checkpointed (read back from the store), use
	// never started.
	done := *before["t"]
	r, crashed := b.interrupted(t, yaml, &done)
	again, recs := b.resume(t, e, r, crashed)
	if again.State != routine.StateSucceeded {
		t.Fatalf("resumed run %s: %+v", again.State, again.Error)
	}
	if !reflect.DeepEqual(byID(recs)["use"].Outputs, before["use"].Outputs) {
		t.Errorf("after the resume use saw\n%#v\nbefore the crash\n%#v", byID(recs)["use"].Outputs, before["use"].Outputs)
	}
	if srv.tickets != 1 {
		t.Errorf("/ticket was asked %d times, want once: the resumed run must not repeat t", srv.tickets)
	}
}

// answerKind is an http kind that answers with the outputs it holds.
type answerKind struct{ out routine.Outputs }

func (answerKind) Name() string { return "http" }

func (k answerKind) Execute(context.Context, *stepkind.Execution) (*stepkind.Result, error) {
	return &stepkind.Result{Outputs: k.out}, nil
}

// TestSecretsRedactedInStructuredOutputs: a secret in a structured output
// is masked wherever it is, in a value, a key or a number that writes it,
// in the record the store keeps and the next steps read.
func TestSecretsRedactedInStructuredOutputs(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	const token, pin = "tok-9f2e7c41", "739104"
	e := engine.New(engine.Config{
		Store: b.store,
		Kinds: stepkind.NewRegistry(answerKind{out: routine.Outputs{
			"status": "200",
			"json": map[string]any{
				"echo":  []any{"Bearer " + token, 1},
				token:   "a key named after it",
				"pin":   739104,
				"other": 739105,
			},
		}}),
		StateDir: filepath.Join(b.dir, ".routines"),
		Secrets:  staticSecrets{"TOKEN": token, "PIN": pin},
	})
	run, recs := b.run(t, t.Context(), e, `
name: redact
secrets: [TOKEN, PIN]
steps:
  - id: h
    http: { url: https://api.example.com/x, headers: { Authorization: "Bearer {{TOKEN}}" } }
`)
	if run.State != routine.StateSucceeded {
		t.Fatalf("run %s: %+v", run.State, run.Error)
	}
	got := byID(recs)
	want := map[string]any{"echo": []any{"Bearer ***", 1}, "***": "a key named after it", "pin": "***", "other": 739105}
	if !reflect.DeepEqual(got["h"].Outputs["json"], want) {
		t.Errorf("stored json %#v, want %#v", got["h"].Outputs["json"], want)
	}
}

// A routine step finds only the routines of its own routine's namespace:
// a team's routine cannot run another team's (with that team's secrets,
// on input it chooses); the other's name is not found, as if it did not
// exist.
func TestSubRunKeepsToTheNamespace(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	parse := func(yaml, ns string) *routine.Routine {
		r, err := spec.Parse("routine.yaml", []byte(yaml), b.dir)
		if err != nil {
			t.Fatal(err)
		}
		r.Namespace = ns
		return r
	}
	cat := catalog{
		"b-child": parse("name: b-child\nsteps:\n  - id: s\n    run: echo ran\n", "team-b"),
		"a-child": parse("name: a-child\nsteps:\n  - id: s\n    run: echo ran\n", "team-a"),
	}
	e := engine.New(engine.Config{Store: b.store, Kinds: stepkind.NewRegistry(steps.RunKind{}, steps.RoutineKind{}),
		StateDir: filepath.Join(b.dir, ".routines"), Routines: cat})
	for child, want := range map[string]routine.State{"a-child": routine.StateSucceeded, "b-child": routine.StateFailed} {
		caller := parse("name: a-caller\nsteps:\n  - id: call\n    routine: { name: "+child+" }\n", "team-a")
		run, err := b.store.RunCreate(t.Context(), &store.RunCreateParams{
			ID: fmt.Sprintf("01TEST%020d", time.Now().UnixNano()), Routine: caller.Name,
			Trigger: routine.TriggerInfo{Kind: routine.TriggerManual}, QueuedAt: time.Now().UTC(),
		})
		if err != nil {
			t.Fatal(err)
		}
		if run, err = e.Execute(t.Context(), caller, run); err != nil {
			t.Fatal(err)
		}
		if run.State != want {
			t.Errorf("team-a calling %s: %s (%+v), want %s", child, run.State, run.Error, want)
		}
		if want == routine.StateFailed && (run.Error == nil || !strings.Contains(run.Error.Message, `no routine "b-child"`)) {
			t.Errorf("team-a calling b-child: error %+v, want not found", run.Error)
		}
	}
	if runs, err := b.store.RunList(t.Context(), &store.RunListParams{Routine: "b-child"}); err != nil || len(runs) != 0 {
		t.Errorf("b-child runs: %d, %v; want none", len(runs), err)
	}
}

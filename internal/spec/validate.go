package spec

import (
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/suggest"
	"github.com/routines-dev/routines/internal/template"
)

// The step and trigger kinds of this version.
var (
	stepKinds    = []string{"run", "state", "emit", "sql", "http", "slack", "routine", "email", "llm", "classify", "agent"}
	triggerKinds = []string{"cron", "every", "webhook", "file", "event", "slack_command", "email"}
)

var (
	namePattern   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	idPattern     = regexp.MustCompile(`^[a-z_][a-z0-9_-]*$`)
	envPattern    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	secretPattern = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
	inputPattern  = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
)

// scriptExts are the extensions that make the first word of run: a script
// of the routine rather than a command.
var scriptExts = []string{".sh", ".bash", ".py", ".rb", ".pl", ".js", ".mjs", ".ts", ".php", ".lua"}

// validator checks a decoded routine and reports each problem at the node
// it comes from.
type validator struct {
	doc *document
	r   *routine.Routine
	dir string // the routine directory; "" skips the file-system checks
	// types are those of the steps' outputs, built when first needed.
	types *template.Types
}

func validate(doc *document, r *routine.Routine, dir string) {
	v := &validator{doc: doc, r: r, dir: dir}
	v.routine()
	v.triggers()
	v.steps()
	v.alerts()
}

// errorf reports a problem at the node of path, or of its closest parent
// present in the file.
func (v *validator) errorf(path, format string, args ...any) {
	line, col := v.pos(path)
	v.report(line, col, path, fmt.Sprintf(format, args...))
}

// warnf records a warning at the node of path: something valid that may
// not mean what was meant.
func (v *validator) warnf(path, format string, args ...any) {
	line, col := v.pos(path)
	v.doc.warn(line, col, path, fmt.Sprintf(format, args...))
}

// keyErrorf reports a problem at the key of the mapping entry at path.
func (v *validator) keyErrorf(path, format string, args ...any) {
	if k, ok := v.doc.keys[path]; ok {
		line, col := nodePos(k)
		v.report(line, col, path, fmt.Sprintf(format, args...))
		return
	}
	v.errorf(path, format, args...)
}

// report records a problem unless it follows from one already reported:
// a value around path, or inside it, that could not be decoded, or a key
// misspelled as path.
func (v *validator) report(line, col int, path, msg string) {
	if v.doc.misspelled[path] && !v.given(path) {
		return
	}
	for p := path; p != ""; p = parent(p) {
		if v.doc.invalid[p] {
			return
		}
	}
	for p := range v.doc.invalid {
		if strings.HasPrefix(p, path) && (strings.HasPrefix(p[len(path):], ".") || strings.HasPrefix(p[len(path):], "[")) {
			return
		}
	}
	v.doc.add(line, col, path, msg)
}

func (v *validator) pos(path string) (int, int) {
	for p := path; p != ""; p = parent(p) {
		if n, ok := v.doc.nodes[p]; ok {
			return nodePos(n)
		}
	}
	return 1, 1
}

// maxMinutesSaved bounds value.minutes_saved_per_run at a year of minutes
// a run: beyond it a figure is a slip (a number of seconds, say), and
// .inf would make every sum of hours saved infinite.
const maxMinutesSaved = 366 * 24 * 60

// given reports whether the file sets path, even to an empty value.
func (v *validator) given(path string) bool {
	_, ok := v.doc.nodes[path]
	return ok
}

// parent returns the path one level up: $.a.b[2] → $.a.b → $.a → $ → "".
func parent(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

func (v *validator) routine() {
	r := v.r
	switch {
	case r.Name == "":
		v.errorf("$.name", "name is required: lower-case letters, digits and dashes, such as daily-report")
	case !namePattern.MatchString(r.Name):
		v.errorf("$.name", "name %q must be lower-case letters, digits and dashes, starting and ending with a letter or digit", r.Name)
	}
	v.placement()
	v.positive("$.timeout", r.Timeout)
	if v.given("$.parallelism") && r.Parallelism < 1 {
		v.errorf("$.parallelism", "parallelism must be at least 1, got %d", r.Parallelism)
	}
	if c := r.Concurrency; c != nil {
		if v.given("$.concurrency.max") && c.Max < 1 {
			v.errorf("$.concurrency.max", "concurrency.max must be at least 1, got %d", c.Max)
		}
		if c.Reserved < 0 {
			v.errorf("$.concurrency.reserved", "concurrency.reserved must not be negative, got %d", c.Reserved)
		}
		if c.Max > 0 && c.Reserved > c.Max {
			v.errorf("$.concurrency.reserved", "concurrency.reserved (%d) must not be more than concurrency.max (%d)", c.Reserved, c.Max)
		}
	}
	if r.Value != nil && !(r.Value.MinutesSavedPerRun > 0 && r.Value.MinutesSavedPerRun <= maxMinutesSaved) {
		v.errorf("$.value.minutes_saved_per_run", "value.minutes_saved_per_run must be a number of minutes more than 0 and at most %d, such as 5: what one successful run saves", maxMinutesSaved)
	}
	for _, name := range slices.Sorted(maps.Keys(r.Inputs)) {
		if !inputPattern.MatchString(name) {
			v.keyErrorf("$.inputs."+name, "input name %q must be lower-case letters, digits and _, such as ticket_id", name)
		}
	}
	v.env("$.env", r.Env)
	seen := map[string]string{}
	for i, s := range r.Secrets {
		p := "$.secrets[" + strconv.Itoa(i) + "]"
		if v.given(p + ".name") {
			p += ".name"
		}
		switch {
		case s.Name == "":
			v.errorf(p, "secrets[%d]: name is required", i)
		case !secretPattern.MatchString(s.Name):
			v.errorf(p, "secret name %q must be upper-case letters, digits and _, such as SLACK_TOKEN", s.Name)
		case seen[s.Name] != "":
			v.errorf(p, "secret %s is declared twice (first on line %d)", s.Name, v.line(seen[s.Name]))
		default:
			seen[s.Name] = p
		}
	}
	if pm := r.Permissions; pm != nil {
		for key, paths := range map[string][]string{"read": pm.Read, "write": pm.Write} {
			for i, p := range paths {
				if strings.TrimSpace(p) == "" {
					v.errorf(fmt.Sprintf("$.permissions.%s[%d]", key, i), "permissions.%s[%d]: a path must not be empty", key, i)
				}
			}
		}
	}
	if l := r.Limits; l != nil {
		if v.given("$.limits.memory") && l.Memory == 0 {
			v.errorf("$.limits.memory", "limits.memory must be more than 0")
		}
		v.positive("$.limits.cpu", l.CPU)
	}
	v.resources("$.resources", r.Resources)
}

// placement checks region: and labels:, which a worker's --region and
// --labels must match: spelt as they are, each label once.
func (v *validator) placement() {
	r := v.r
	if v.given("$.region") && !routine.ValidLabel(r.Region) {
		v.errorf("$.region", "region %q must be %s, such as eu-west: the --region of the workers that may run it", r.Region, routine.LabelRule)
	}
	seen := map[string]string{}
	for i, l := range r.Labels {
		p := "$.labels[" + strconv.Itoa(i) + "]"
		switch {
		case !routine.ValidLabel(l):
			v.errorf(p, "label %q must be %s, such as gpu: one of the --labels of the workers that may run it", l, routine.LabelRule)
		case seen[l] != "":
			v.errorf(p, "label %s is listed twice (first on line %d): list each label once", l, v.line(seen[l]))
		default:
			seen[l] = p
		}
	}
}

// resources checks a resources: mapping of the routine or a step.
func (v *validator) resources(p string, r *routine.Resources) {
	if r == nil {
		return
	}
	if v.given(p+".memory") && r.Memory <= 0 {
		v.errorf(p+".memory", "resources.memory must be more than 0, such as 512Mi")
	}
	if v.given(p+".pids") && r.Pids < 1 {
		v.errorf(p+".pids", "resources.pids must be 1 or more, such as 256")
	}
	if v.given(p+".cpu") && r.CPU <= 0 {
		v.errorf(p+".cpu", "resources.cpu must be more than 0, such as 1.5 (CPUs)")
	}
}

// line returns the line of the node at path.
func (v *validator) line(path string) int {
	line, _ := v.pos(path)
	return line
}

// positive reports a duration that is given but zero.
func (v *validator) positive(path string, d routine.Duration) {
	if v.given(path) && d == 0 {
		v.errorf(path, "%s must be more than 0", human(path))
	}
}

// env checks the names of an env: mapping.
func (v *validator) env(path string, env map[string]string) {
	for _, name := range slices.Sorted(maps.Keys(env)) {
		switch {
		case !envPattern.MatchString(name):
			v.keyErrorf(path+"."+name, "env name %q must be letters, digits and _, not starting with a digit", name)
		case strings.HasPrefix(strings.ToUpper(name), "ROUTINES_"):
			v.keyErrorf(path+"."+name, "env name %q is reserved: the engine sets the ROUTINES_* variables", name)
		}
	}
}

func (v *validator) steps() {
	r := v.r
	if len(r.Steps) == 0 {
		v.errorf("$.steps", "a routine needs at least one step under steps:")
	}
	lists := []stepList{{path: "$.steps", steps: r.Steps}, {path: "$.on_failure", steps: r.OnFailure, onFailure: true}}
	first := map[string]string{} // step id → path of its first use
	for _, l := range lists {
		for i := range l.steps {
			p := l.stepPath(i)
			id := l.steps[i].ID
			switch {
			case id == "":
				v.errorf(p, "%s: id is required", human(p))
			case !idPattern.MatchString(id):
				v.errorf(p+".id", "step id %q must be lower-case letters, digits, _ and -, starting with a letter or _", id)
			case first[id] != "":
				v.errorf(p+".id", "duplicate step id %q (first used on line %d)", id, v.line(first[id]))
			default:
				first[id] = p + ".id"
			}
			v.step(p, &l.steps[i])
		}
	}
	main := v.graph(lists[0], lists[1].ids())
	fallback := v.graph(lists[1], lists[0].ids())
	v.templates(lists[0], main, nil)
	v.templates(lists[1], fallback, lists[0].ids())
}

// stepList is steps: or on_failure:.
type stepList struct {
	path      string
	steps     []routine.Step
	onFailure bool
}

func (l stepList) stepPath(i int) string { return l.path + "[" + strconv.Itoa(i) + "]" }

func (l stepList) ids() []string {
	ids := make([]string, 0, len(l.steps))
	for _, s := range l.steps {
		if s.ID != "" {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

// label names a step in messages: by id, else by place.
func label(p string, s *routine.Step) string {
	if s.ID != "" {
		return strconv.Quote(s.ID)
	}
	return human(p)
}

func (v *validator) step(p string, s *routine.Step) {
	v.kind(p, &s.Action, "step "+label(p, s))
	v.action(p, &s.Action)
	if rt := s.Retry; rt != nil {
		v.retry(p+".retry", rt)
	}
	v.resources(p+".resources", s.Resources)
	if v.given(p+".artifacts") && s.Kind() != "" && s.Kind() != "run" {
		v.keyErrorf(p+".artifacts", "artifacts only apply to run steps")
	}
	for i, a := range s.Artifacts {
		ap := p + ".artifacts[" + strconv.Itoa(i) + "]"
		if a == "" || !filepath.IsLocal(a) {
			v.errorf(ap, "artifact %q must be a relative path that stays inside the step's workdir", a)
		}
	}
	if c := s.Compensate; c != nil {
		cp := p + ".compensate"
		v.kind(cp, c, "compensate of step "+label(p, s))
		v.action(cp, c)
	}
}

// kind checks that the action at p, which what names, has exactly one kind.
func (v *validator) kind(p string, a *routine.Action, what string) {
	var kinds []string
	for _, k := range stepKinds {
		if v.given(p + "." + k) {
			kinds = append(kinds, k)
		}
	}
	switch {
	case a.Kind() == "":
		v.errorf(p, "%s does nothing: add one of %s", what, strings.Join(stepKinds, ", "))
	case len(kinds) > 1:
		v.errorf(p, "%s has %s, but a step has one kind: write one step per kind", what, strings.Join(kinds, " and "))
	}
}

func (v *validator) retry(p string, rt *routine.Retry) {
	if v.given(p+".attempts") && rt.Attempts < 1 {
		v.errorf(p+".attempts", "%s.attempts must be at least 1, got %d", human(p), rt.Attempts)
	}
	backoffs := []string{string(routine.BackoffExponential), string(routine.BackoffLinear), string(routine.BackoffConstant)}
	if rt.Backoff != "" && !slices.Contains(backoffs, string(rt.Backoff)) {
		v.errorf(p+".backoff", "%s.backoff must be one of %s, got %q%s", human(p), strings.Join(backoffs, ", "), rt.Backoff, suggest.DidYouMean(string(rt.Backoff), backoffs))
	}
	v.positive(p+".initial", rt.Initial)
	v.positive(p+".max", rt.Max)
	initial, maxDelay := cmpOr(rt.Initial, defaultInitial), cmpOr(rt.Max, defaultMaxDelay)
	if initial > maxDelay {
		by := ""
		if rt.Max == 0 {
			by = " by default"
		}
		v.errorf(p+".initial", "%s.initial (%s) is more than %s.max (%s%s)", human(p), initial.D(), human(p), maxDelay.D(), by)
	}
}

// cmpOr returns d, or def when d is zero.
func cmpOr(d, def routine.Duration) routine.Duration {
	if d == 0 {
		return def
	}
	return d
}

// action checks what a step or its compensate: does.
func (v *validator) action(p string, a *routine.Action) {
	if a.Shell != "" && a.Shell != "bash" && a.Shell != "sh" {
		v.errorf(p+".shell", "shell must be bash or sh, got %q", a.Shell)
	}
	v.positive(p+".timeout", a.Timeout)
	v.env(p+".env", a.Env)
	if k := a.Kind(); k != "" && k != "run" {
		for _, key := range []string{"shell", "workdir"} {
			if v.given(p + "." + key) {
				v.keyErrorf(p+"."+key, "%s only applies to run steps", key)
			}
		}
	}
	if a.State != nil {
		v.state(p+".state", a.State)
	}
	if a.Emit != nil {
		v.emit(p+".emit", a.Emit)
	}
	if a.SQL != nil {
		v.sql(p+".sql", a.SQL)
	}
	if a.Email != nil {
		v.emailStep(p+".email", a.Email)
	}
	if a.Routine != nil {
		v.routineStep(p+".routine", a.Routine)
	}
	if a.HTTP != nil {
		v.http(p+".http", a.HTTP)
	}
	if a.Slack != nil {
		v.slack(p+".slack", a.Slack)
	}
	if a.LLM != nil {
		v.llm(p+".llm", a.LLM)
	}
	if a.Classify != nil {
		v.classify(p+".classify", a.Classify)
	}
	if a.Agent != nil {
		v.agent(p+".agent", a.Agent)
	}
	base := v.dir
	if wd := a.Workdir; wd != "" && !strings.Contains(wd, "{{") {
		if !filepath.IsLocal(wd) {
			v.errorf(p+".workdir", "workdir %q must be a relative path that stays inside the routine directory", wd)
			return
		}
		base = filepath.Join(v.dir, wd)
	}
	if script := scriptPath(a.Run); script != "" && v.dir != "" {
		full := filepath.Join(base, script)
		switch fi, err := os.Stat(full); {
		case err != nil:
			v.errorf(p+".run", "script %s not found (looked in %s)", script, full)
		case fi.IsDir():
			v.errorf(p+".run", "script %s is a directory (%s)", script, full)
		}
	}
}

// state checks a state: action: one operation, a valid key, and value and
// ttl only with put. A key or value with a template is checked by the state
// step once rendered; its references are checked with the other templates.
func (v *validator) state(p string, st *routine.StateAction) {
	keys := map[string]string{routine.StateOpGet: st.Get, routine.StateOpPut: st.Put, routine.StateOpDelete: st.Delete}
	var ops []string
	for _, op := range []string{routine.StateOpGet, routine.StateOpPut, routine.StateOpDelete} {
		if !v.given(p + "." + op) {
			continue
		}
		ops = append(ops, op)
		if key := keys[op]; !strings.Contains(key, "{{") {
			if err := routine.CheckStateKey(key); err != nil {
				v.errorf(p+"."+op, "%v", err)
			} else if op != routine.StateOpGet && strings.HasPrefix(key, routine.EmailCursorPrefix) {
				v.errorf(p+"."+op, "state key %q is reserved: the keys %s* hold the place of the routine's email triggers", key, routine.EmailCursorPrefix)
			}
		}
	}
	switch {
	case len(ops) == 0:
		v.errorf(p, "%s needs one of get, put or delete, with the key to use", human(p))
	case len(ops) > 1:
		v.errorf(p, "%s has %s, but a state step does one of them: write one step per operation", human(p), strings.Join(ops, " and "))
	}
	put := slices.Contains(ops, routine.StateOpPut)
	switch {
	case v.given(p+".value") && !put:
		v.keyErrorf(p+".value", "value only applies to put")
	case put && !v.given(p+".value"):
		v.keyErrorf(p+".put", "put needs value: the value to store")
	case !strings.Contains(st.Value, "{{"):
		if err := routine.CheckStateValue(st.Value); err != nil {
			v.errorf(p+".value", "%v", err)
		}
	}
	if v.given(p + ".ttl") {
		if !put {
			v.keyErrorf(p+".ttl", "ttl only applies to put")
		}
		v.positive(p+".ttl", st.TTL)
	}
}

// emit checks an emit: action: an event name (once rendered, when it is
// a template: the step checks it then), and a server URL that parses. Its
// templates are checked with the others.
func (v *validator) emit(p string, e *routine.EmitAction) {
	if strings.TrimSpace(e.Event) == "" {
		v.errorf(p, "%s needs event: the name of the event to publish, such as cpu.alert", human(p))
	} else if !strings.Contains(e.Event, "{{") {
		if err := routine.CheckEventName(e.Event); err != nil {
			v.errorf(p+".event", "%v", err)
		}
	}
	if srv := e.Server; srv != "" && !strings.Contains(srv, "{{") {
		if u, err := url.Parse(srv); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.errorf(p+".server", "%s.server must be an http:// or https:// URL, got %q", human(p), srv)
		}
	}
}

// scriptPath returns the script that run: starts, when its first word is a
// relative path (./x, ../x, dir/x.sh) or a file name with a script
// extension; "" otherwise. Absolute paths are left alone: they name files
// of the machine that runs the step, not of the routine.
func scriptPath(run string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(run), "\n")
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return ""
	}
	word := fields[0]
	switch {
	case strings.ContainsAny(word, "{}$`\"'=;|&<>()*?"), strings.HasPrefix(word, "/"):
		return ""
	case strings.HasPrefix(word, "./"), strings.HasPrefix(word, "../"):
		return word
	case slices.Contains(scriptExts, filepath.Ext(word)):
		return word
	}
	return ""
}

package spec

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/suggest"
	"github.com/routines-dev/routines/internal/template"
)

// scope is what the templates of one place may reference.
type scope struct {
	step    string   // the step being rendered; "" in a trigger
	list    stepList // its list
	order   *order
	i       int      // its position in the list
	self    bool     // its own outputs are available (compensate:)
	main    []string // ids of the main steps, all available to on_failure
	env     map[string]bool
	trigger bool
}

// templates checks every rendered string of the steps of l: that it
// compiles and that what it references exists when the step runs.
func (v *validator) templates(l stepList, o *order, main []string) {
	for i := range l.steps {
		s := &l.steps[i]
		p := l.stepPath(i)
		sc := &scope{step: s.ID, list: l, order: o, i: i, main: main, env: v.envKeys(s.Env)}
		if s.If != "" {
			c, err := template.CompileCondition(s.If)
			v.checkTemplate(p+".if", c, err, sc)
		}
		v.actionTemplates(p, &s.Action, sc)
		if c := s.Compensate; c != nil {
			csc := *sc
			csc.self, csc.env = true, v.envKeys(c.Env)
			v.actionTemplates(p+".compensate", c, &csc)
		}
	}
}

// actionTemplates checks the templates of an action: its env, and every
// string the engine renders (template.MapStrings).
func (v *validator) actionTemplates(p string, a *routine.Action, sc *scope) {
	for _, k := range slices.Sorted(maps.Keys(a.Env)) {
		v.template(p+".env."+k, a.Env[k], sc)
	}
	template.MapStrings(*a, func(path, s string) (string, error) {
		v.template(p+"."+path, s, sc)
		switch path {
		case "run":
			v.structure(p+".run", s, func(s string) error { _, err := template.ParseShell(s, a.Shell); return err })
		case "http.url":
			v.structure(p+".http.url", s, func(s string) error { _, err := template.ParseURL(s); return err })
		}
		return s, nil
	})
}

// structure reports where the values of a string that the engine renders
// for a shell or a URL would change what is around them; v.template has
// reported the rest.
func (v *validator) structure(path, s string, parse func(string) error) {
	if !strings.Contains(s, "{{") {
		return
	}
	if _, err := template.Parse(s); err != nil {
		return
	}
	if err := parse(s); err != nil {
		v.checkTemplate(path, nil, err, nil)
	}
}

// envKeys returns the env names a step sees: the routine's and its own.
func (v *validator) envKeys(step map[string]string) map[string]bool {
	keys := make(map[string]bool, len(v.r.Env)+len(step))
	for k := range v.r.Env {
		keys[k] = true
	}
	for k := range step {
		keys[k] = true
	}
	return keys
}

// template parses the string at path and checks its references.
func (v *validator) template(path, s string, sc *scope) {
	if !strings.Contains(s, "{{") {
		return
	}
	t, err := template.Parse(s)
	v.checkTemplate(path, t, err, sc)
}

// refsOf is a parsed template or condition.
type refsOf interface{ Refs() []template.Ref }

func (v *validator) checkTemplate(path string, t refsOf, err error, sc *scope) {
	if err != nil {
		var te *template.Error
		if !errors.As(err, &te) {
			v.errorf(path, "%s: %v", human(path), err)
			return
		}
		line, col := v.strPos(path, te.Offset)
		v.report(line, col, path, human(path)+": "+te.Msg)
		return
	}
	ok := true
	for _, ref := range t.Refs() {
		msg, at := v.checkRef(ref, sc), ref.Offset
		if msg == "" && ref.Root == template.RootSteps {
			msg, at = v.outputPath(ref)
		}
		if msg != "" {
			line, col := v.strPos(path, at)
			v.report(line, col, path, msg)
			ok = false
		}
	}
	if typed, isTyped := t.(interface{ CheckTypes(*template.Types) error }); ok && isTyped {
		if err := typed.CheckTypes(v.outputTypes()); err != nil {
			v.checkTemplate(path, nil, err, sc)
		}
	}
}

// checkRef returns what is wrong with a reference, or "".
func (v *validator) checkRef(ref template.Ref, sc *scope) string {
	name := ""
	if len(ref.Path) > 0 {
		name = ref.Path[0]
	}
	switch ref.Root {
	case template.RootSteps, template.RootFailure, template.RootRun, template.RootInput:
		if sc.trigger {
			return ref.Root + " is not available in a trigger: only event, env, routine and {{NAME}} are"
		}
	}
	switch ref.Root {
	case template.RootNamed:
		if v.declaredSecret(name) || sc.env[name] {
			return ""
		}
		return "{{" + name + "}} is neither a declared secret nor an env entry: " + v.undeclared(name, sc.env)
	case template.RootEnv:
		if name == "" || sc.env[name] {
			return ""
		}
		return ref.String() + " is not set: add " + name + " to env: of the routine or of the step" + suggest.DidYouMean(name, slices.Sorted(maps.Keys(sc.env)))
	case template.RootInput:
		if name != "" && !slices.Contains(v.r.InputsRead, name) {
			v.r.InputsRead = append(v.r.InputsRead, name)
		}
		if _, ok := v.r.Inputs[name]; name == "" || v.r.Inputs == nil || ok {
			return ""
		}
		return "input." + name + " is not a declared input" + suggest.DidYouMean(name, slices.Sorted(maps.Keys(v.r.Inputs)))
	case template.RootFailure:
		if !sc.list.onFailure {
			return "failure is only available in on_failure steps"
		}
	case template.RootSteps:
		return v.checkStepRef(name, sc)
	}
	return ""
}

// checkStepRef checks that step id has finished whenever the scope's step
// runs.
func (v *validator) checkStepRef(id string, sc *scope) string {
	if id == "" {
		return "" // steps[expr]: only known at run time
	}
	switch {
	case id == sc.step && sc.self:
		return ""
	case sc.order.finished(sc.i, id), slices.Contains(sc.main, id):
		return ""
	case id == sc.step:
		return "steps." + id + " is not available to step \"" + sc.step + "\": a step cannot use its own outputs"
	}
	if _, ok := sc.order.index[id]; ok {
		return "steps." + id + " is not available to step \"" + sc.step + "\": add " + id + " to needs"
	}
	if !sc.list.onFailure && slices.Contains(v.onFailureIDs(), id) {
		return "steps." + id + " is not available to step \"" + sc.step + "\": it is an on_failure step, which runs only after the main steps"
	}
	known := append(sc.list.ids(), sc.main...)
	return "unknown step \"" + id + "\" in steps." + id + suggest.DidYouMean(id, known)
}

func (v *validator) onFailureIDs() []string {
	return stepList{steps: v.r.OnFailure}.ids()
}

func (v *validator) declaredSecret(name string) bool {
	return slices.ContainsFunc(v.r.Secrets, func(s routine.SecretRef) bool { return s.Name == name })
}

// undeclared says what to do about a reference to name, which is not a
// declared secret (nor in env, the names of env: the place may use): use
// the declared name it is a typo of, if any, else declare it.
func (v *validator) undeclared(name string, env map[string]bool) string {
	names := make([]string, 0, len(v.r.Secrets)+len(env))
	for _, s := range v.r.Secrets {
		names = append(names, s.Name)
	}
	declared := len(names)
	names = append(names, slices.Sorted(maps.Keys(env))...)
	c := suggest.Typo(name, names)
	if c == "" {
		return "add " + name + " to secrets:"
	}
	what := "an env entry"
	if slices.Index(names, c) < declared {
		what = "declared in secrets:"
	}
	// DB_PASS2 may be a second secret beside DB_PASS1: the advice to
	// declare it stays, second.
	return "did you mean {{" + c + "}} (" + what + ")? If " + name + " is another secret, add it to secrets:"
}

// strPos returns the position of byte offset off within the string at
// path. It is exact for a string on one line and for a literal block (|);
// elsewhere (escapes, folding) it is the start of the string.
func (v *validator) strPos(path string, off int) (int, int) {
	n := v.doc.nodes[path]
	line, col := v.pos(path)
	switch x := n.(type) {
	case *ast.StringNode:
		val := x.Value
		text, ok := v.doc.line(line)
		if !ok || strings.Contains(val, "\n") || off > len(val) {
			return line, col
		}
		rest := []rune(text)
		if col-1 > len(rest) {
			return line, col
		}
		rest = rest[col-1:]
		skip := 0
		if t := x.GetToken().Type; t == token.SingleQuoteType || t == token.DoubleQuoteType {
			skip = 1
		}
		if skip > len(rest) || !strings.HasPrefix(string(rest[skip:]), val) {
			return line, col
		}
		return line, col + skip + utf8.RuneCountInString(val[:off])
	case *ast.LiteralNode:
		val := x.Value.Value
		if x.Start == nil || !strings.HasPrefix(x.Start.Value, "|") || off > len(val) {
			return line, col
		}
		before := val[:off]
		l := line + 1 + strings.Count(before, "\n")
		text, ok := v.doc.line(l)
		if !ok {
			return line, col
		}
		indent := len(text) - len(strings.TrimLeft(text, " "))
		lineStart := strings.LastIndexByte(before, '\n') + 1
		lineEnd := strings.IndexByte(val[lineStart:], '\n')
		if lineEnd < 0 {
			lineEnd = len(val) - lineStart
		}
		if text[indent:] != val[lineStart:lineStart+lineEnd] {
			return line, col
		}
		return l, indent + 1 + utf8.RuneCountInString(before[lineStart:])
	}
	return line, col
}

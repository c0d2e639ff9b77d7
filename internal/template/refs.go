package template

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/expr-lang/expr/ast"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/suggest"
)

// Ref is one reference a template or condition makes: steps.fetch.outputs.url
// is Ref{Root: "steps", Path: ["fetch", "outputs", "url"]}, {{TOKEN}} is
// Ref{Root: RootNamed, Path: ["TOKEN"]}. Path holds the leading constant
// keys only: steps[id].outputs has an empty Path.
type Ref struct {
	Root string
	Path []string
	// Chain is every selector after the root, constant or not:
	// steps.q.outputs.rows[0].email has Path [q outputs rows] and Chain
	// [q outputs rows [0] email]. It ends where the expression stops
	// selecting (a call, an operator).
	Chain []Selector
	// Offset is the byte offset of the reference within the parsed string.
	Offset int
	// Optional is set when a missing value is handled by the expression
	// itself (a ?? b, a?.b), so the reference may be absent at run time.
	Optional bool
}

// Selector is one selection in a chain: a key (.email,
// ["Content-Type"]) or an index ([0], [i], [input.key]).
type Selector struct {
	// Key is a constant key; for an index, the integer as written, or ""
	// when the index is computed.
	Key string
	// Index is set for [ ] holding anything but a constant string.
	Index bool
	// Offset is the byte offset of the key or index from the reference's
	// Offset, so a reference moves as a whole without a copy of its chain.
	Offset int
}

// String writes the selector as it is written after a value: .email,
// ["Content-Type"], [0], […].
func (s Selector) String() string {
	switch {
	case s.Index && s.Key == "":
		return "[…]"
	case s.Index:
		return "[" + s.Key + "]"
	case isIdentifier(s.Key):
		return "." + s.Key
	}
	return "[" + strconv.Quote(s.Key) + "]"
}

// isIdentifier reports whether key can be written after a dot.
func isIdentifier(key string) bool {
	for i, c := range key {
		if c != '_' && !unicode.IsLetter(c) && (i == 0 || !unicode.IsDigit(c)) {
			return false
		}
	}
	return key != ""
}

// String writes the reference as it would be written in an expression.
func (r Ref) String() string {
	if r.Root == RootNamed {
		return "{{" + strings.Join(r.Path, "") + "}}"
	}
	return dotted(r.Root, r.Path)
}

// Prefix writes the reference up to its nth selector, as an expression:
// steps.q.outputs.rows[0] for n = 4.
func (r Ref) Prefix(n int) string {
	var b strings.Builder
	b.WriteString(r.Root)
	for _, s := range r.Chain[:n] {
		b.WriteString(s.String())
	}
	return b.String()
}

func dotted(root string, path []string) string {
	return strings.Join(append([]string{root}, path...), ".")
}

// resolve reports a reference whose value is missing from c, naming it.
func (r *Ref) resolve(c *Context) error {
	switch r.Root {
	case RootInput, RootEnv:
		m := c.Input
		if r.Root == RootEnv {
			m = c.Env
		}
		if len(r.Path) > 0 {
			if _, ok := m[r.Path[0]]; !ok {
				return notSet(r.Root, r.Path[:1])
			}
		}
	case RootSteps:
		if len(r.Path) == 0 {
			return nil
		}
		s, ok := c.Steps[r.Path[0]]
		if !ok {
			return notSet(r.Root, r.Path[:1])
		}
		if len(r.Path) > 2 && r.Path[1] == "outputs" {
			v, ok := s.Outputs[r.Path[2]]
			if !ok {
				return notSet(r.Root, r.Path[:3])
			}
			if v, i, err := r.descend(v, 3); err != nil {
				return err
			} else if i < len(r.Path) {
				return r.notObject(i, v)
			}
		}
	case RootEvent:
		// A value that is not an object: the evaluator says what is wrong.
		_, _, err := r.descend(c.Event, 0)
		return err
	case RootFailure:
		if c.Failure == nil {
			return errors.New("failure is not set: it is only available in on_failure steps")
		}
	}
	return nil
}

// descend follows the keys of r.Path from its (from)th on, starting at v.
// It returns an error for a missing key, and the index of the first key
// it could not follow with the value that is not an object.
func (r *Ref) descend(v any, from int) (any, int, error) {
	for i := from; i < len(r.Path); i++ {
		var ok bool
		switch m := v.(type) {
		case nil:
		case map[string]any:
			v, ok = m[r.Path[i]]
		case map[string]string:
			v, ok = m[r.Path[i]]
		default:
			return v, i, nil
		}
		if !ok {
			return nil, i, notSet(r.Root, r.Path[:i+1])
		}
	}
	return v, len(r.Path), nil
}

// notObject says why the ith key of r.Path cannot be read: the value
// before it, v, is not an object.
func (r *Ref) notObject(i int, v any) error {
	return errors.New(r.CannotSelect(i, routine.ShapeTypeOf(v)))
}

// CannotSelect says why the ith selector of r cannot select from a value
// of type t, and what to write instead; "" when it can. Validate says it
// of the values whose type it knows, the run of the others.
func (r Ref) CannotSelect(i int, t routine.ShapeType) string {
	at, sel := r.Prefix(i), r.Chain[i]
	what := fmt.Sprintf("field %q", sel.Key)
	if sel.Index {
		what = "element " + sel.String()
	}
	switch {
	case t == routine.ShapeString:
		return fmt.Sprintf("%s is text, so it has no %s: if it holds JSON, write %s", at, what, r.FromJSON(i))
	case t == routine.ShapeNumber || t == routine.ShapeBool:
		return fmt.Sprintf("%s is %s, so it has no %s", at, t, what)
	case t == routine.ShapeList && !sel.Index:
		return fmt.Sprintf("%s is a list, so it has no %s: pick an element first, as in %s[0]%s", at, what, at, sel)
	}
	return ""
}

// FromJSON writes the reference with its first n selectors, a text that
// holds JSON, decoded by fromJSON: fromJSON(steps.r.outputs.message).id
// for n = 3.
func (r Ref) FromJSON(n int) string {
	var b strings.Builder
	b.WriteString("fromJSON(" + r.Prefix(n) + ")")
	for _, s := range r.Chain[n:] {
		b.WriteString(s.String())
	}
	return b.String()
}

func notSet(root string, path []string) error {
	return fmt.Errorf("%s is not set", dotted(root, path))
}

// analyzer walks an expression's syntax tree, collecting references and
// rejecting names that are not a root, a let variable or a field of a typed
// root. It stops at the first error.
type analyzer struct {
	src   string // the expression
	refs  []Ref
	scope []string // let variables in scope
	err   *Error
}

func (a *analyzer) fail(n ast.Node, format string, args ...any) {
	a.failAt(byteOffset(a.src, n.Location().From), format, args...)
}

func (a *analyzer) failAt(offset int, format string, args ...any) {
	if a.err == nil {
		a.err = &Error{Offset: offset, Expr: a.src, Msg: fmt.Sprintf(format, args...)}
	}
}

func (a *analyzer) walk(n ast.Node, optional bool) {
	if n == nil || a.err != nil {
		return
	}
	switch n := n.(type) {
	case *ast.IdentifierNode:
		a.identifier(n, nil, 0, optional)
	case *ast.MemberNode:
		a.member(n, optional)
	case *ast.ChainNode:
		a.walk(n.Node, true)
	case *ast.BinaryNode:
		a.walk(n.Left, optional || n.Operator == "??")
		a.walk(n.Right, optional)
	case *ast.UnaryNode:
		a.walk(n.Node, optional)
	case *ast.SliceNode:
		a.walk(n.Node, optional)
		a.walk(n.From, optional)
		a.walk(n.To, optional)
	case *ast.CallNode:
		// A named callee is a builtin function; expr-lang checks those.
		if _, ok := n.Callee.(*ast.IdentifierNode); !ok {
			a.walk(n.Callee, optional)
		}
		for _, arg := range n.Arguments {
			a.walk(arg, optional)
		}
	case *ast.BuiltinNode:
		for _, arg := range n.Arguments {
			a.walk(arg, optional)
		}
	case *ast.PredicateNode:
		a.walk(n.Node, optional)
	case *ast.VariableDeclaratorNode:
		a.walk(n.Value, optional)
		a.scope = append(a.scope, n.Name)
		a.walk(n.Expr, optional)
		a.scope = a.scope[:len(a.scope)-1]
	case *ast.SequenceNode:
		for _, x := range n.Nodes {
			a.walk(x, optional)
		}
	case *ast.ConditionalNode:
		a.walk(n.Cond, optional)
		a.walk(n.Exp1, optional)
		a.walk(n.Exp2, optional)
	case *ast.ArrayNode:
		for _, x := range n.Nodes {
			a.walk(x, optional)
		}
	case *ast.MapNode:
		for _, x := range n.Pairs {
			a.walk(x, optional)
		}
	case *ast.PairNode:
		a.walk(n.Key, optional)
		a.walk(n.Value, optional)
	}
}

// member handles a chain such as steps["a"].outputs.x: the leading constant
// keys after a root become the Path of one Ref; computed keys are walked.
func (a *analyzer) member(n *ast.MemberNode, optional bool) {
	var chain []*ast.MemberNode
	var base ast.Node = n
	for {
		m, ok := base.(*ast.MemberNode)
		if !ok {
			break
		}
		chain = append(chain, m)
		if m.Optional {
			optional = true
		}
		base = m.Node
	}
	slices.Reverse(chain)
	sels := make([]Selector, len(chain))
	path := 0 // the leading constant keys
	for i, m := range chain {
		s := Selector{Index: true, Offset: byteOffset(a.src, m.Property.Location().From)}
		switch p := m.Property.(type) {
		case *ast.StringNode:
			s.Key, s.Index = p.Value, false
		case *ast.IntegerNode:
			s.Key = strconv.Itoa(p.Value)
		}
		if !s.Index && path == i {
			path++
		}
		sels[i] = s
	}
	if id, ok := base.(*ast.IdentifierNode); ok {
		a.identifier(id, sels, path, optional)
	} else {
		a.walk(base, optional)
	}
	for _, m := range chain[path:] {
		a.walk(m.Property, optional)
	}
}

// identifier checks a name and, when it is a root, records the reference
// with the selectors that follow it, of which the first path are
// constant keys.
func (a *analyzer) identifier(n *ast.IdentifierNode, sels []Selector, path int, optional bool) {
	name := n.Value
	if slices.Contains(a.scope, name) {
		return
	}
	if !slices.Contains(Roots, name) {
		switch {
		case name == "$env":
			a.fail(n, "$env is not available: start from one of %s", strings.Join(Roots, ", "))
		case namedValue.MatchString(name):
			a.fail(n, "unknown name %q: write {{%s}} on its own, or env.%s", name, name, name)
		default:
			a.fail(n, "unknown name %q in expression%s", name, suggest.DidYouMean(name, Roots))
		}
		return
	}
	var fields []string
	at := 0
	switch name {
	case RootRun:
		fields = runFields
	case RootRoutine:
		fields = routineFields
	case RootFailure:
		fields = failureFields
	case RootSteps:
		fields, at = stepFields, 1
	}
	var keys []string
	for _, s := range sels[:path] {
		keys = append(keys, s.Key)
	}
	start := byteOffset(a.src, n.Location().From)
	for i := range sels {
		sels[i].Offset -= start
	}
	if fields != nil && path > at && !slices.Contains(fields, keys[at]) {
		a.failAt(start+sels[at].Offset, "unknown field %q of %s%s", keys[at], dotted(name, keys[:at]), suggest.DidYouMean(keys[at], fields))
		return
	}
	a.refs = append(a.refs, Ref{
		Root:     name,
		Path:     keys,
		Chain:    sels,
		Offset:   start,
		Optional: optional,
	})
}

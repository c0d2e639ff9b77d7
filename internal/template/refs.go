package template

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/expr-lang/expr/ast"

	"github.com/routines-dev/routines/internal/suggest"
)

// Ref is one reference a template or condition makes: steps.fetch.outputs.url
// is Ref{Root: "steps", Path: ["fetch", "outputs", "url"]}, {{TOKEN}} is
// Ref{Root: RootNamed, Path: ["TOKEN"]}. Path holds the leading constant
// keys only: steps[id].outputs has an empty Path.
type Ref struct {
	Root string
	Path []string
	// Offset is the byte offset of the reference within the parsed string.
	Offset int
	// Optional is set when a missing value is handled by the expression
	// itself (a ?? b, a?.b), so the reference may be absent at run time.
	Optional bool
}

// String writes the reference as it would be written in an expression.
func (r Ref) String() string {
	if r.Root == RootNamed {
		return "{{" + strings.Join(r.Path, "") + "}}"
	}
	return dotted(r.Root, r.Path)
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
			if _, ok := s.Outputs[r.Path[2]]; !ok {
				return notSet(r.Root, r.Path[:3])
			}
		}
	case RootEvent:
		v := c.Event
		for i, k := range r.Path {
			var ok bool
			switch m := v.(type) {
			case nil:
			case map[string]any:
				v, ok = m[k]
			case map[string]string:
				v, ok = m[k]
			default:
				return nil // not a map: the evaluator says what is wrong
			}
			if !ok {
				return notSet(r.Root, r.Path[:i+1])
			}
		}
	case RootFailure:
		if c.Failure == nil {
			return errors.New("failure is not set: it is only available in on_failure steps")
		}
	}
	return nil
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
	if a.err == nil {
		a.err = &Error{Offset: byteOffset(a.src, n.Location().From), Expr: a.src, Msg: fmt.Sprintf(format, args...)}
	}
}

func (a *analyzer) walk(n ast.Node, optional bool) {
	if n == nil || a.err != nil {
		return
	}
	switch n := n.(type) {
	case *ast.IdentifierNode:
		a.identifier(n, nil, nil, optional)
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
	var path []string
	var keys []ast.Node
	for _, m := range chain {
		s, ok := m.Property.(*ast.StringNode)
		if !ok {
			break
		}
		path = append(path, s.Value)
		keys = append(keys, s)
	}
	if id, ok := base.(*ast.IdentifierNode); ok {
		a.identifier(id, path, keys, optional)
	} else {
		a.walk(base, optional)
	}
	for _, m := range chain[len(path):] {
		a.walk(m.Property, optional)
	}
}

// identifier checks a name and, when it is a root, records the reference
// with the constant keys that follow it.
func (a *analyzer) identifier(n *ast.IdentifierNode, path []string, keys []ast.Node, optional bool) {
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
	if fields != nil && len(path) > at && !slices.Contains(fields, path[at]) {
		a.fail(keys[at], "unknown field %q of %s%s", path[at], dotted(name, path[:at]), suggest.DidYouMean(path[at], fields))
		return
	}
	a.refs = append(a.refs, Ref{
		Root:     name,
		Path:     path,
		Offset:   byteOffset(a.src, n.Location().From),
		Optional: optional,
	})
}

package template

import "github.com/expr-lang/expr/ast"

// A static expression is a plain path such as steps.fetch.outputs.url,
// env.X or input.name: the most common expression by far. It is evaluated
// with map lookups instead of the expr-lang virtual machine, which makes
// it cheaper both to compile and to render.

// staticPath returns the reference n is, when n is a plain path of a shape
// the lookups below handle.
func staticPath(n ast.Node, refs []Ref) (Ref, bool) {
	if len(refs) != 1 || refs[0].Optional {
		return Ref{}, false
	}
	for m, ok := n.(*ast.MemberNode); ok; m, ok = n.(*ast.MemberNode) {
		if _, ok := m.Property.(*ast.StringNode); !ok || m.Optional || m.Method {
			return Ref{}, false
		}
		n = m.Node
	}
	if _, ok := n.(*ast.IdentifierNode); !ok {
		return Ref{}, false
	}
	r := refs[0]
	switch r.Root {
	case RootInput, RootEnv, RootRun, RootRoutine:
		return r, len(r.Path) == 1
	case RootSteps:
		return r, len(r.Path) >= 3 && r.Path[1] == "outputs" || len(r.Path) == 2 && r.Path[1] == "status"
	case RootEvent:
		return r, len(r.Path) > 0
	}
	return Ref{}, false
}

// lookup evaluates a static path that resolve has found to be set.
func lookup(r *Ref, c *Context) any {
	switch r.Root {
	case RootInput:
		return c.Input[r.Path[0]]
	case RootEnv:
		return c.Env[r.Path[0]]
	case RootSteps:
		s := c.Steps[r.Path[0]]
		if r.Path[1] == "status" {
			return s.Status
		}
		return follow(s.Outputs[r.Path[2]], r.Path[3:])
	case RootRun:
		if r.Path[0] == "id" {
			return c.Run.ID
		}
		return c.Run.Attempt
	case RootRoutine:
		if r.Path[0] == "name" {
			return c.Routine.Name
		}
		return c.Routine.Revision
	}
	return follow(c.Event, r.Path)
}

// follow returns the value at keys from v, nil when a value on the way is
// not an object.
func follow(v any, keys []string) any {
	for _, k := range keys {
		switch m := v.(type) {
		case map[string]any:
			v = m[k]
		case map[string]string:
			v = m[k]
		default:
			return nil
		}
	}
	return v
}

// lookupText is lookup for rendering: it returns strings without boxing
// them in an interface.
func lookupText(r *Ref, c *Context) (string, error) {
	switch r.Root {
	case RootInput:
		return c.Input[r.Path[0]], nil
	case RootEnv:
		return c.Env[r.Path[0]], nil
	case RootSteps:
		s := c.Steps[r.Path[0]]
		if r.Path[1] == "status" {
			return s.Status, nil
		}
		if v, ok := s.Outputs[r.Path[2]].(string); ok && len(r.Path) == 3 {
			return v, nil
		}
	case RootRoutine:
		return lookup(r, c).(string), nil
	case RootRun:
		if r.Path[0] == "id" {
			return c.Run.ID, nil
		}
	}
	return stringify(lookup(r, c))
}

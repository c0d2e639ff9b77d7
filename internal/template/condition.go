package template

import (
	"fmt"
	"strings"
)

// Condition is a compiled if: expression. It is safe for concurrent use.
type Condition struct {
	src  string
	expr *expression
	at   int // the offset of the expression in src
	refs []Ref
}

// CompileCondition compiles a bare expression such as
// steps.check.outputs.changed == "true". A value wrapped in {{ }} as a
// whole is accepted too. Errors are *Error and locate the problem within s.
func CompileCondition(s string) (*Condition, error) {
	body, offset := s, 0
	if t := strings.TrimSpace(s); strings.HasPrefix(t, "{{") && closing(t, 2) == len(t)-2 {
		offset = strings.Index(s, "{{") + 2
		body = t[2 : len(t)-2]
	}
	trimmed := strings.TrimSpace(body)
	if trimmed == "" {
		return nil, &Error{Offset: offset, Expr: s, Msg: "empty condition: write an expression such as steps.check.outputs.ok == \"true\""}
	}
	offset += strings.Index(body, trimmed)
	e, refs, err := compileAt(trimmed, offset, true)
	if err != nil {
		return nil, err
	}
	return &Condition{src: s, expr: e, at: offset, refs: refs}, nil
}

// String returns the source of the condition.
func (c *Condition) String() string { return c.src }

// Refs returns every reference the condition makes, in source order. The
// caller must not modify the result.
func (c *Condition) Refs() []Ref { return c.refs }

// Eval evaluates the condition against ctx; a result that is not true or
// false is an error.
func (c *Condition) Eval(ctx *Context) (bool, error) {
	v, err := c.expr.eval(ctx)
	if err != nil {
		return false, fmt.Errorf("condition %q: %w", c.expr.src, err)
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("condition %q gave %T %v, not true or false", c.expr.src, v, v)
	}
	return b, nil
}

package template

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/optimizer"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	"github.com/routines-dev/routines/internal/routine"
)

// Error is a template or condition that does not compile.
type Error struct {
	// Offset is the byte offset of the problem within the parsed string.
	Offset int
	// Expr is the expression (or {{ … }} segment) at fault.
	Expr string
	// Msg says what is wrong.
	Msg string
}

// Error says where the problem is and what it is.
func (e *Error) Error() string {
	return fmt.Sprintf("expression %q at offset %d: %s", e.Expr, e.Offset, e.Msg)
}

// expression is one compiled expression of a template or condition.
type expression struct {
	src     string
	program *vm.Program // nil for a static path
	static  Ref
	refs    []Ref
	checks  []Ref // the refs that must resolve before the program runs
}

// vms holds reusable virtual machines: a VM keeps its stack between runs.
var vms = sync.Pool{New: func() any { return new(vm.VM) }}

// configs holds compiler configurations: building one costs more than
// compiling a short expression, and one must not be shared between
// goroutines (its type cache is not synchronized).
var configs = sync.Pool{New: func() any { return newConfig(Context{}) }}

// newConfig returns a compiler configuration for expressions over env: a
// Context, or the types validate gives its roots (Types).
func newConfig(env any) *conf.Config {
	c := conf.CreateNew()
	expr.Env(env)(c)
	expr.Function("fromJSON", fromJSON, new(func(any) any))(c)
	expr.Patch(lenientDefaults{})(c)
	c.Check()
	return c
}

// cache holds compiled expressions by source: a routine repeats
// expressions (env.X, run.id), and the engine parses the strings of a
// routine again for every run. An expression is immutable once compiled.
var (
	cache     sync.Map // cacheKey → *expression
	cacheSize atomic.Int64
)

// maxCached bounds the cache; expressions past it are compiled each time.
const maxCached = 4096

type cacheKey struct {
	src    string
	asBool bool
}

// compileAt compiles src, found at offset within the parsed string, and
// returns it with its references; errors and references are located
// within the parsed string.
func compileAt(src string, offset int, asBool bool) (*expression, []Ref, error) {
	key := cacheKey{src, asBool}
	v, ok := cache.Load(key)
	if !ok {
		e, err := compile(src, asBool)
		if err != nil {
			err.Offset += offset
			return nil, nil, err
		}
		if cacheSize.Add(1) <= maxCached {
			cache.Store(key, e)
		}
		v = e
	}
	e := v.(*expression)
	refs := slices.Clone(e.refs)
	for i := range refs {
		refs[i].Offset += offset
	}
	return e, refs, nil
}

// compile checks the names src uses and compiles it, as expr.Compile does
// but parsing only once. Errors and refs are located within src.
func compile(src string, asBool bool) (*expression, *Error) {
	cfg := configs.Get().(*conf.Config)
	defer configs.Put(cfg)
	tree, err := parser.ParseWithConfig(src, cfg)
	if err != nil {
		return nil, exprError(src, err)
	}
	a := analyzer{src: src}
	a.walk(tree.Node, false)
	if a.err != nil {
		return nil, a.err
	}
	if r, ok := staticPath(tree.Node, a.refs); ok && !asBool {
		return &expression{src: src, static: r, refs: a.refs, checks: a.refs}, nil
	}
	if err := checkTree(tree, cfg, src, asBool); err != nil {
		return nil, err
	}
	if err := optimizer.Optimize(&tree.Node, cfg); err != nil {
		return nil, exprError(src, err)
	}
	program, err := compiler.Compile(tree, cfg)
	if err != nil {
		return nil, exprError(src, err)
	}
	e := &expression{src: src, program: program, refs: a.refs}
	for _, r := range a.refs {
		if !r.Optional {
			e.checks = append(e.checks, r)
		}
	}
	return e, nil
}

// checkTree checks the types of a parsed expression, which must be true
// or false when asBool.
func checkTree(tree *parser.Tree, cfg *conf.Config, src string, asBool bool) *Error {
	t, err := new(checker.Checker).PatchAndCheck(tree, cfg)
	if err != nil {
		return exprError(src, err)
	}
	if asBool && t.Kind() != reflect.Bool && t.Kind() != reflect.Interface {
		return &Error{Expr: src, Msg: fmt.Sprintf("a condition must be true or false, but this is a %s", t)}
	}
	return nil
}

// exprError turns an expr-lang error into an *Error located within src.
func exprError(src string, err error) *Error {
	var fe *file.Error
	if errors.As(err, &fe) {
		return &Error{Offset: byteOffset(src, fe.From), Expr: src, Msg: fe.Message}
	}
	return &Error{Expr: src, Msg: err.Error()}
}

// byteOffset converts expr-lang's rune offset into a byte offset of s.
func byteOffset(s string, runes int) int {
	i := 0
	for n := 0; n < runes && i < len(s); n++ {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return i
}

// check reports the first reference of e that c does not set. Like render
// and eval, it leaves naming the expression to the caller.
func (e *expression) check(c *Context) error {
	for i := range e.checks {
		if err := e.checks[i].resolve(c); err != nil {
			return err
		}
	}
	return nil
}

// render evaluates e against c and writes the value as text.
func (e *expression) render(c *Context) (string, error) {
	if e.program == nil {
		if err := e.check(c); err != nil {
			return "", err
		}
		return lookupText(&e.static, c)
	}
	v, err := e.eval(c)
	if err != nil {
		return "", err
	}
	return stringify(v)
}

// eval checks the references, then runs the program against c.
func (e *expression) eval(c *Context) (any, error) {
	if err := e.check(c); err != nil {
		return nil, err
	}
	if e.program == nil {
		return lookup(&e.static, c), nil
	}
	m := vms.Get().(*vm.VM)
	v, err := m.Run(e.program, c)
	vms.Put(m)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			return nil, errors.New(fe.Message)
		}
		return nil, err
	}
	return v, nil
}

// fromJSON replaces the builtin of expr-lang: it decodes JSON text into
// the values structured outputs hold (integers as int, so ids keep every
// digit), and gives a value that is already structured, such as
// steps.ticket.outputs.json, as it is, so routines written before outputs
// had structure keep working.
func fromJSON(args ...any) (any, error) {
	s, ok := args[0].(string)
	if !ok {
		return args[0], nil
	}
	return routine.DecodeJSON([]byte(s))
}

// lenientDefaults makes the left side of a ?? b read a missing map key as
// nil, so steps.x.outputs.y ?? "none" gives "none" when y was not written:
// expr-lang otherwise reads a missing key of a map[string]string as "".
type lenientDefaults struct{}

func (lenientDefaults) Visit(node *ast.Node) {
	b, ok := (*node).(*ast.BinaryNode)
	if !ok || b.Operator != "??" {
		return
	}
	if m, ok := b.Left.(*ast.MemberNode); ok && !m.Method && !structField(m) {
		get := &ast.BuiltinNode{Name: "get", Arguments: []ast.Node{m.Node, m.Property}}
		get.SetLocation(m.Location())
		b.Left = get
	}
}

// structField reports whether m reads a field of one of the typed parts of
// Context (run.id, steps.x.outputs), which get() cannot index.
func structField(m *ast.MemberNode) bool {
	depth := 0
	var n ast.Node = m
	for {
		mm, ok := n.(*ast.MemberNode)
		if !ok {
			break
		}
		depth++
		n = mm.Node
	}
	id, ok := n.(*ast.IdentifierNode)
	if !ok {
		return false
	}
	switch id.Value {
	case RootRun, RootRoutine, RootFailure:
		return depth == 1
	case RootSteps:
		return depth == 2
	}
	return false
}

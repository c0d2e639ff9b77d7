package spec

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/suggest"
)

// Bounds that keep a hostile file from exhausting the decoder.
const (
	maxDepth   = 64
	maxAliases = 10_000
)

var (
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	secretRefType   = reflect.TypeFor[routine.SecretRef]()
	durationType    = reflect.TypeFor[routine.Duration]()
	byteSizeType    = reflect.TypeFor[routine.ByteSize]()
)

// document is a decoded routine file: the problems found and, for every
// path such as $.steps[2].needs[0], the YAML node it came from, so later
// checks can point at the source.
type document struct {
	*source
	nodes map[string]ast.Node // value nodes
	keys  map[string]ast.Node // key nodes of mapping entries
	// invalid holds the paths whose value could not be decoded, and
	// misspelled the paths a misspelled key was taken for: the checks
	// that follow say nothing more about them.
	invalid, misspelled map[string]bool
}

// decoder turns YAML nodes into Go values, reporting every mismatch.
type decoder struct {
	doc     *document
	anchors map[string]ast.Node
	aliases int
	depth   int
}

// format is a kind of file decode reads: what its top level decodes
// into, and how messages name it.
type format struct {
	root reflect.Type // a struct type
	noun string       // "a routine file"
	// empty is the problem of an empty file; "" when one is valid.
	empty string
	// mapping says what the top level holds, for a file that is not a
	// mapping.
	mapping string
}

// routineFile is the format of routine.yaml.
var routineFile = &format{
	root:    reflect.TypeFor[routine.Routine](),
	noun:    "a routine file",
	empty:   "the file is empty: a routine needs at least name: and steps:",
	mapping: "name:, steps: and more",
}

// formatOf is the format of the file src reads.
func formatOf(src *source) *format {
	if src.format == nil {
		return routineFile
	}
	return src.format
}

// decode parses the file and decodes it into v, a pointer to a value of
// its format's root type, recording the problems in src. It returns nil
// when the YAML itself cannot be read, or the file is empty.
func decode(src *source, v any) *document {
	f := formatOf(src)
	doc := &document{
		source:     src,
		nodes:      map[string]ast.Node{},
		keys:       map[string]ast.Node{},
		invalid:    map[string]bool{},
		misspelled: map[string]bool{},
	}
	file, err := parser.ParseBytes(src.data, 0)
	if err != nil {
		doc.syntaxError(err)
		return nil
	}
	if ind, ok := indentation(src); ok && ind.continued {
		// Valid YAML, read as more of the value above: say so.
		src.warn(ind.line, ind.col, "", ind.msg)
	}
	if len(file.Docs) == 0 || file.Docs[0].Body == nil {
		if f.empty != "" {
			doc.add(1, 1, "$", f.empty)
		}
		return nil
	}
	if len(file.Docs) > 1 {
		line, col := nodePos(file.Docs[1].Body)
		if start := file.Docs[1].Start; start != nil {
			line, col = tokenPos(start)
		}
		doc.add(line, col, "$", f.noun+" holds one YAML document: remove the --- and what follows")
	}
	d := &decoder{doc: doc, anchors: map[string]ast.Node{}}
	body := file.Docs[0].Body
	ast.Walk(anchorCollector(d.anchors), body)
	d.value(body, reflect.ValueOf(v).Elem(), "$", "")
	return doc
}

// syntaxError records a YAML syntax error at its position.
func (doc *document) syntaxError(err error) {
	var ye yaml.Error
	if !errors.As(err, &ye) || ye.GetToken() == nil {
		doc.add(1, 1, "", "invalid YAML: "+err.Error())
		return
	}
	line, col := tokenPos(ye.GetToken())
	if f, ok := indentation(doc.source); ok && f.from <= line {
		doc.add(f.line, f.col, "", f.msg)
		return
	}
	msg := ye.GetMessage()
	switch {
	case strings.Contains(msg, "'\t'"):
		msg = "tabs cannot indent YAML: use spaces"
	case strings.HasPrefix(msg, "mapping value is not allowed"):
		msg = `unexpected ":" here: quote a value that contains ": ", or check the indentation`
	}
	doc.add(line, col, "", "invalid YAML: "+msg)
}

// anchorCollector records every &anchor of the document, so an alias
// resolves even when the key holding its anchor was rejected.
type anchorCollector map[string]ast.Node

func (a anchorCollector) Visit(n ast.Node) ast.Visitor {
	if n == nil {
		return nil
	}
	if x, ok := n.(*ast.AnchorNode); ok && x.Name != nil {
		a[x.Name.GetToken().Value] = x.Value
	}
	return a
}

// problem records a problem at node n for the document path.
func (d *decoder) problem(n ast.Node, path, format string, args ...any) {
	line, col := nodePos(n)
	d.doc.add(line, col, path, fmt.Sprintf(format, args...))
}

// resolve follows anchors, aliases and tags to the node holding the value.
func (d *decoder) resolve(n ast.Node) (ast.Node, bool) {
	for {
		switch x := n.(type) {
		case *ast.AnchorNode:
			n = x.Value
		case *ast.TagNode:
			n = x.Value
		case *ast.AliasNode:
			name := x.Value.GetToken().Value
			target, ok := d.anchors[name]
			if !ok {
				d.problem(x, "", "unknown alias *%s: no &%s anchor is defined", name, name)
				return nil, false
			}
			if d.aliases++; d.aliases > maxAliases {
				if d.aliases == maxAliases+1 {
					d.problem(x, "", "too many alias expansions (more than %d)", maxAliases)
				}
				return nil, false
			}
			n = target
		case nil:
			return nil, false
		default:
			return n, true
		}
	}
}

// invalid records a problem with the value at path, which the checks
// that follow then leave alone.
func (d *decoder) invalid(n ast.Node, path, format string, args ...any) {
	d.doc.invalid[path] = true
	d.problem(n, path, format, args...)
}

// value decodes n into v; key is the mapping key that holds it, used to
// describe what was expected.
func (d *decoder) value(n ast.Node, v reflect.Value, path, key string) {
	n, ok := d.resolve(n)
	if !ok {
		d.doc.invalid[path] = true
		return
	}
	d.doc.nodes[path] = n
	if _, null := n.(*ast.NullNode); null {
		return
	}
	if d.depth++; d.depth > maxDepth {
		d.invalid(n, path, "%s: nested too deep", human(path))
		return
	}
	defer func() { d.depth-- }()

	t := v.Type()
	switch {
	case t == secretRefType:
		if s, ok := scalar(n); ok {
			v.Set(reflect.ValueOf(routine.SecretRef{Name: s}))
			return
		}
	case reflect.PointerTo(t).Implements(textUnmarshaler):
		s, ok := scalar(n)
		if !ok {
			d.typeError(n, path, key, t)
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			d.invalid(n, path, "%s: %v", human(path), err)
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		// Leave the pointer nil when the value is of the wrong type, so
		// that needs: "a" does not read as needs: [].
		p, before := reflect.New(t.Elem()), len(d.doc.problems)
		d.value(n, p.Elem(), path, key)
		if t.Elem().Kind() == reflect.Struct || len(d.doc.problems) == before {
			v.Set(p)
		}
	case reflect.Struct:
		d.structure(n, v, path, key)
	case reflect.Map:
		d.mapping(n, v, path, key)
	case reflect.Slice:
		seq, ok := n.(*ast.SequenceNode)
		if !ok {
			d.typeError(n, path, key, t)
			return
		}
		s := reflect.MakeSlice(t, len(seq.Values), len(seq.Values))
		for i, item := range seq.Values {
			d.value(item, s.Index(i), path+"["+strconv.Itoa(i)+"]", key)
		}
		v.Set(s)
	case reflect.String:
		s, ok := scalar(n)
		if !ok {
			d.typeError(n, path, key, t)
			return
		}
		v.SetString(s)
	case reflect.Int:
		i, ok := n.(*ast.IntegerNode)
		if !ok {
			d.typeError(n, path, key, t)
			return
		}
		var x int64
		switch iv := i.Value.(type) {
		case int64:
			x = iv
		case uint64:
			if iv > math.MaxInt64 {
				d.invalid(n, path, "%s: %s is too large", human(path), i.Token.Value)
				return
			}
			x = int64(iv)
		}
		v.SetInt(x)
	case reflect.Bool:
		b, ok := n.(*ast.BoolNode)
		if !ok {
			d.typeError(n, path, key, t)
			return
		}
		v.SetBool(b.Value)
	default:
		// A kind no routine field uses yet (float, any): let the YAML
		// library convert it.
		if err := yaml.NodeToValue(n, v.Addr().Interface()); err != nil {
			d.typeError(n, path, key, t)
		}
	}
}

// pairs returns the entries of mapping n, with the entries merged in by
// <<: *anchor first so that the explicit ones override them.
func (d *decoder) pairs(n ast.Node, path string) ([]*ast.MappingValueNode, bool) {
	var values []*ast.MappingValueNode
	switch m := n.(type) {
	case *ast.MappingNode:
		values = m.Values
	case *ast.MappingValueNode:
		values = []*ast.MappingValueNode{m}
	default:
		return nil, false
	}
	var merged, explicit []*ast.MappingValueNode
	for _, mv := range values {
		if mv.Key == nil || mv.Key.Type() != ast.MergeKeyType {
			explicit = append(explicit, mv)
			continue
		}
		src, ok := d.resolve(mv.Value)
		if !ok {
			continue
		}
		sources := []ast.Node{src}
		if seq, ok := src.(*ast.SequenceNode); ok {
			sources = seq.Values
		}
		for _, s := range sources {
			s, ok := d.resolve(s)
			if !ok {
				continue
			}
			if d.depth++; d.depth > maxDepth {
				d.depth--
				d.problem(s, path, "%s: merges nested too deep", human(path))
				continue
			}
			p, ok := d.pairs(s, path)
			d.depth--
			if !ok {
				d.problem(s, path, "<< merges a mapping or a list of mappings, got %s", nodeKind(s))
				continue
			}
			merged = append(merged, p...)
		}
	}
	return append(merged, explicit...), true
}

// structure decodes a mapping into struct v, reporting every unknown key.
func (d *decoder) structure(n ast.Node, v reflect.Value, path, key string) {
	entries, ok := d.pairs(n, path)
	if !ok {
		d.typeError(n, path, key, v.Type())
		return
	}
	si := fieldsOf(v.Type())
	var prev *field // the entry before, for a key indented too little
	var prevNode *ast.MappingValueNode
	for _, mv := range entries {
		k, ok := d.key(mv, path)
		if !ok {
			continue
		}
		f := si.byKey[k]
		if f == nil {
			if hint := d.nestingHint(prevNode, prev, k, mv.Key); hint != "" && suggest.Closest(k, si.keys) == "" {
				d.problem(mv.Key, path, "unknown key %q %s: %s", k, where(path), hint)
			} else {
				d.unknownKey(mv.Key, path, k, si.keys)
			}
			prev, prevNode = nil, nil
			continue
		}
		d.doc.keys[path+"."+k] = mv.Key
		d.value(mv.Value, v.FieldByIndex(f.index), path+"."+k, k)
		prev, prevNode = f, mv
	}
}

// where names the mapping at path for messages.
func where(path string) string {
	if path == "$" {
		return "at the top level"
	}
	return "in " + human(path)
}

// nestingHint says where key, unknown in its mapping, belongs when the
// entry before it (prev, a field of type prev.typ) would accept it: the
// key was indented too little, so YAML closed that entry's block. It
// returns "" when the key fits there neither, or is not the next line's.
func (d *decoder) nestingHint(prevNode *ast.MappingValueNode, prev *field, key string, keyNode ast.Node) string {
	if prevNode == nil || prevNode.Key == nil {
		return ""
	}
	prevLine, prevCol := nodePos(prevNode.Key)
	line, col := nodePos(keyNode)
	if col != prevCol || line <= prevLine {
		return ""
	}
	pk := prevNode.Key.GetToken().Value
	val, _ := d.resolve(prevNode.Value)
	switch x := val.(type) {
	case *ast.NullNode, nil:
		if !acceptsKey(prev.typ, key) {
			return ""
		}
		return fmt.Sprintf("it is at the column of `%s:` (line %d), which has no value; to put it under %s:, indent it to column %d", pk, prevLine, pk, col+2)
	case *ast.SequenceNode:
		if len(x.Values) == 0 || !acceptsKey(prev.typ, key) {
			return ""
		}
		item, _ := d.resolve(x.Values[len(x.Values)-1])
		m, ok := item.(*ast.MappingNode)
		if !ok || m.IsFlowStyle || len(m.Values) == 0 {
			return ""
		}
		il, ic := nodePos(m)
		text, _ := d.doc.line(il)
		noun := (&block{holder: pk}).noun()
		return fmt.Sprintf("it is a key of the %s that starts at line %d (`%s`); indent it to column %d, under `%s`", noun, il, firstWords(strings.TrimSpace(text)), ic, m.Values[0].Key.GetToken().Value)
	case *ast.MappingNode:
		// Only a struct's fields say the key belongs there; any key fits
		// a map such as env:.
		if t := elem(prev.typ); x.IsFlowStyle || len(x.Values) == 0 || t == nil || t.Kind() != reflect.Struct || !acceptsKey(t, key) {
			return ""
		}
		fl, fc := nodePos(x)
		return fmt.Sprintf("it is a key of `%s:` (line %d); indent it to column %d, in line with `%s:` (line %d)", pk, prevLine, fc, x.Values[0].Key.GetToken().Value, fl)
	}
	return ""
}

// acceptsKey reports whether a mapping decoded into t (through pointers
// and lists) takes key: any key for a map, its fields for a struct.
func acceptsKey(t reflect.Type, key string) bool {
	switch t = elem(t); {
	case t == nil:
		return false
	case t.Kind() == reflect.Map:
		return true
	}
	return fieldsOf(t).byKey[key] != nil
}

// mapping decodes a mapping into the map v.
func (d *decoder) mapping(n ast.Node, v reflect.Value, path, key string) {
	entries, ok := d.pairs(n, path)
	if !ok {
		d.typeError(n, path, key, v.Type())
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMapWithSize(v.Type(), len(entries)))
	}
	for _, mv := range entries {
		k, ok := d.key(mv, path)
		if !ok {
			continue
		}
		d.doc.keys[path+"."+k] = mv.Key
		elem := reflect.New(v.Type().Elem()).Elem()
		d.value(mv.Value, elem, path+"."+k, key)
		v.SetMapIndex(reflect.ValueOf(k), elem)
	}
}

// key returns the text of an entry's key, which must be a scalar.
func (d *decoder) key(mv *ast.MappingValueNode, path string) (string, bool) {
	k, ok := d.resolve(mv.Key)
	if !ok {
		return "", false
	}
	s, ok := scalar(k)
	if !ok {
		d.problem(k, path, "%s: a key must be a plain name, got %s", human(path), nodeKind(k))
	}
	return s, ok
}

func (d *decoder) unknownKey(k ast.Node, path, key string, valid []string) {
	if c := suggest.Closest(key, valid); c != "" {
		d.doc.misspelled[path+"."+c] = true
		d.problem(k, path, "unknown key %q; did you mean %q?", key, c)
	} else {
		d.problem(k, path, "unknown key %q (valid here: %s)", key, strings.Join(valid, ", "))
	}
}

func (d *decoder) typeError(n ast.Node, path, key string, t reflect.Type) {
	if path == "$" {
		f := formatOf(d.doc.source)
		d.invalid(n, path, "%s is a mapping with %s, got %s", f.noun, f.mapping, nodeKind(n))
		return
	}
	d.invalid(n, path, "%s: expected %s, got %s", human(path), describe(t, key), nodeKind(n))
}

// scalar returns the text of a scalar node as written, so 1.10 stays
// "1.10" where a string is expected.
func scalar(n ast.Node) (string, bool) {
	switch x := n.(type) {
	case *ast.StringNode:
		return x.Value, true
	case *ast.LiteralNode:
		return x.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return n.GetToken().Value, true
	}
	return "", false
}

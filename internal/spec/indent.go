package spec

import (
	"fmt"
	"reflect"
	"strings"
)

// The YAML parser reports a misindented line in its own terms ("value is
// not allowed in this context"). indentation reads the columns of the
// lines instead: which mappings and lists are open at each line, so that
// a key or a dash between them, or under a key that already has a value,
// is told where it belongs. It knows the routine's types, so a key goes to
// the open mapping that accepts it.

// indentFinding is a line whose indentation fits none of the blocks open
// above it.
type indentFinding struct {
	line, col int // 1-based, of the key or dash at fault
	msg       string
	// continued: the line is deeper than a key whose plain value is on
	// its line (line from): YAML reads it as more of that value, which is
	// valid unless the line holds ": ". The parser reports that failure
	// at the value's line, from.
	continued bool
	from      int
}

// block is a mapping or a list open at some line.
type block struct {
	col  int    // 0-based column of its keys or dashes
	seq  bool   // a list
	line int    // 1-based line where it starts
	text string // that line, trimmed, such as "- id: greet"
	// first is a mapping's first key; holder the key whose value the
	// block is, on line holderLine ("" for the top level and a list
	// item's mapping).
	first, holder string
	holderLine    int
	list          *block       // for a list item's mapping: the list
	typ           reflect.Type // what the block decodes into; nil when any key goes
	// The last entry of a mapping: its key, line, and whether its value
	// is on the line (valued), a plain scalar there (inline: the next
	// lines may continue it) or still to come on the next lines
	// (awaiting: a nested block may open).
	lastKey                  string
	lastLine                 int
	valued, inline, awaiting bool
}

// accepts reports whether key is valid in the mapping, as far as its type
// tells.
func (b *block) accepts(key string) bool {
	if b.typ == nil || b.typ.Kind() != reflect.Struct {
		return true
	}
	return fieldsOf(b.typ).byKey[key] != nil
}

// describe names a mapping for messages.
func (b *block) describe() string {
	switch {
	case b.list != nil:
		return fmt.Sprintf("the %s that starts at line %d (`%s`)", b.list.noun(), b.line, b.text)
	case b.holder == "":
		return "the top level"
	}
	return fmt.Sprintf("`%s:` (line %d)", b.holder, b.holderLine)
}

// noun is what an item of the list is.
func (b *block) noun() string {
	switch b.holder {
	case "steps", "on_failure":
		return "step"
	case "triggers":
		return "trigger"
	}
	return "item"
}

// elem returns the struct type a value of t decodes into, through
// pointers and lists; nil when it is not a struct.
func elem(t reflect.Type) reflect.Type {
	for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice) {
		t = t.Elem()
	}
	if t == nil || (t.Kind() != reflect.Struct && t.Kind() != reflect.Map) {
		return nil
	}
	return t
}

// lineShape is what a line holds: dashes, then a key and its value, or a
// scalar.
type lineShape struct {
	dashes []int  // 0-based columns of leading "- "
	key    string // "" when none
	keyCol int
	value  string // after "key:", trimmed, comment removed
	rest   string // the text after the dashes when there is no key
}

// shape reads one line (without its indentation's tabs: the caller
// reports those).
func shape(text string) lineShape {
	var s lineShape
	pos := len(text) - len(strings.TrimLeft(text, " "))
	for pos < len(text) && text[pos] == '-' && (pos+1 == len(text) || text[pos+1] == ' ') {
		s.dashes = append(s.dashes, pos)
		pos++
		for pos < len(text) && text[pos] == ' ' {
			pos++
		}
	}
	rest := text[pos:]
	if k, v, ok := splitKey(rest); ok {
		s.key, s.keyCol, s.value = k, pos, v
	} else {
		s.rest = stripComment(rest)
	}
	return s
}

// splitKey splits "key: value" (the key plain or quoted), or reports that
// s is no mapping entry.
func splitKey(s string) (key, value string, ok bool) {
	if s == "" || strings.ContainsRune("[]{}#&*!|>%@`,?", rune(s[0])) {
		return "", "", false
	}
	end := -1
	if s[0] == '"' || s[0] == '\'' {
		if i := strings.IndexByte(s[1:], s[0]); i >= 0 && strings.HasPrefix(s[i+2:], ":") {
			end = i + 2
		}
	} else {
		for i := 0; i < len(s); i++ {
			if s[i] == ':' && (i+1 == len(s) || s[i+1] == ' ' || s[i+1] == '\t') {
				end = i
				break
			}
			if s[i] == '#' && i > 0 && s[i-1] == ' ' {
				break
			}
		}
	}
	if end < 0 {
		return "", "", false
	}
	return strings.Trim(s[:end], `"'`), stripComment(strings.TrimSpace(s[end+1:])), true
}

// stripComment drops a trailing # comment from an unquoted value.
func stripComment(v string) string {
	if v == "" || v[0] == '"' || v[0] == '\'' {
		return v
	}
	if i := strings.Index(v, " #"); i >= 0 {
		v = v[:i]
	}
	if strings.HasPrefix(v, "#") {
		return ""
	}
	return strings.TrimSpace(v)
}

// opens reports whether a value leaves its block on the next lines: none
// yet, or only an anchor or a tag.
func opens(v string) bool {
	return v == "" || ((v[0] == '&' || v[0] == '!') && !strings.Contains(v, " "))
}

// indentScan walks the lines of a file, keeping the blocks open at each.
type indentScan struct {
	root  reflect.Type // what the top level decodes into
	stack []*block
	// skipAbove, when not -1, skips the lines indented deeper than it
	// (and blank ones): the body of a block scalar (| or >).
	skipAbove int
	// flow counts the brackets of a flow collection still open, and quote
	// the quote of a string still open, across lines.
	flow  int
	quote byte
	unit  int // the smallest indentation seen, for the tab message
}

// indentation returns the first misindented line of the file.
func indentation(src *source) (indentFinding, bool) {
	sc := &indentScan{skipAbove: -1, root: formatOf(src).root}
	for n := 1; ; n++ {
		text, ok := src.line(n)
		if !ok {
			break
		}
		if f, bad := sc.next(n, strings.TrimRight(text, " \r")); bad {
			return f, true
		}
	}
	return indentFinding{}, false
}

// next takes line n into account, or reports it misindented.
func (sc *indentScan) next(n int, text string) (indentFinding, bool) {
	trimmed := strings.TrimLeft(text, " ")
	indent := len(text) - len(trimmed)
	switch {
	case sc.skipAbove >= 0 && (trimmed == "" || indent > sc.skipAbove):
		return indentFinding{}, false
	case sc.flow > 0 || sc.quote != 0:
		sc.scanFlow(text)
		return indentFinding{}, false
	}
	sc.skipAbove = -1
	if strings.HasPrefix(trimmed, "\t") {
		return sc.tab(n, indent, text), true
	}
	if trimmed == "" || trimmed[0] == '#' {
		return indentFinding{}, false
	}
	if indent == 0 && (strings.HasPrefix(trimmed, "---") || strings.HasPrefix(trimmed, "...") || trimmed[0] == '%') {
		sc.stack = nil
		return indentFinding{}, false
	}
	if indent > 0 && (sc.unit == 0 || indent < sc.unit) {
		sc.unit = indent
	}
	s := shape(text)
	if f, bad := sc.place(n, indent, trimmed, s); bad {
		return f, true
	}
	sc.scanFlow(text)
	return indentFinding{}, false
}

func (sc *indentScan) top() *block {
	if len(sc.stack) == 0 {
		return nil
	}
	return sc.stack[len(sc.stack)-1]
}

// mapping returns the innermost open mapping.
func (sc *indentScan) mapping() *block {
	for i := len(sc.stack) - 1; i >= 0; i-- {
		if !sc.stack[i].seq {
			return sc.stack[i]
		}
	}
	return nil
}

// place fits the line with its dashes and key into the open blocks.
func (sc *indentScan) place(n, indent int, trimmed string, s lineShape) (indentFinding, bool) {
	what := "`" + s.key + ":`"
	if len(s.dashes) > 0 {
		what = "`" + firstWords(trimmed) + "`"
	}
	isKey := len(s.dashes) == 0 && s.key != ""
	if len(s.dashes) == 0 && s.key == "" {
		// A plain scalar: the continuation of the value above, or a
		// list item's value after a lone dash; nothing to place.
		if top := sc.top(); top != nil && top.seq && top.awaiting && indent > top.col {
			top.awaiting = false
		} else if m := sc.mapping(); m != nil && m.awaiting && indent > m.col {
			m.awaiting, m.valued, m.inline = false, true, true
		}
		return indentFinding{}, false
	}
	if m := sc.mapping(); m != nil && m.valued && indent > m.col && m == sc.top() {
		// Deeper than a key whose value is on its line: YAML reads it as
		// more of a plain value, or fails.
		f := sc.misplaced(n, indent, what, isKey, s.key, fmt.Sprintf("is deeper than `%s:` on line %d, which already has a value", m.lastKey, m.lastLine), m.inline)
		f.from = m.lastLine
		return f, true
	}
	if top := sc.top(); top != nil {
		opensUnder := (!top.seq && top.awaiting && (indent > top.col || (indent == top.col && len(s.dashes) > 0))) ||
			(top.seq && top.awaiting && indent > top.col)
		if opensUnder {
			sc.open(n, indent, trimmed, s, top)
			return indentFinding{}, false
		}
	}
	open := append([]*block(nil), sc.stack...)
	for len(sc.stack) > 0 && sc.top().col > indent {
		sc.stack = sc.stack[:len(sc.stack)-1]
	}
	top := sc.top()
	switch {
	case top != nil && top.col == indent && top.seq && len(s.dashes) > 0:
		sc.item(n, trimmed, s, top)
		return indentFinding{}, false
	case top != nil && top.col == indent && top.seq && isKey && len(sc.stack) > 1 && sc.stack[len(sc.stack)-2].col == indent:
		// key: at the column of a list that is its previous key's value
		sc.stack = sc.stack[:len(sc.stack)-1]
		sc.entry(n, sc.top(), s)
		return indentFinding{}, false
	case top != nil && top.col == indent && !top.seq && isKey:
		sc.entry(n, top, s)
		return indentFinding{}, false
	case len(open) == 0: // the first line: the top level
		sc.open(n, indent, trimmed, s, nil)
		return indentFinding{}, false
	}
	sc.stack = open
	place := ""
	if top != nil && top.col == indent && !top.seq {
		place = "is among the keys of " + top.describe()
	}
	return sc.misplaced(n, indent, what, isKey, s.key, place, false), true
}

// firstWords shortens a line for messages: "- id: greet".
func firstWords(s string) string {
	s = stripComment(s)
	if r := []rune(s); len(r) > 40 {
		s = string(r[:37]) + "…"
	}
	return s
}

// misplaced says where a key or a list item at column indent belongs:
// for a key, the open mapping that accepts it, nearest in column (the
// deeper on a tie); for a list item, the nearest open list.
func (sc *indentScan) misplaced(n, indent int, what string, isKey bool, key, place string, continued bool) indentFinding {
	var best *block
	for pass := 0; pass < 2 && best == nil; pass++ {
		for _, b := range sc.stack {
			if b.seq == isKey || (isKey && pass == 0 && !b.accepts(key)) {
				continue
			}
			if best == nil || abs(b.col-indent) <= abs(best.col-indent) {
				best = b
			}
		}
	}
	f := indentFinding{line: n, col: indent + 1, from: n, continued: continued}
	if best == nil {
		f.msg = fmt.Sprintf("indentation: %s at column %d lines up with nothing above it: align it with the entries it belongs with", what, indent+1)
		return f
	}
	verb := "indent it to"
	if best.col < indent {
		verb = "move it back to"
	}
	switch {
	case !isKey:
		if place == "" {
			place = "does not line up with the list it continues"
		}
		f.msg = fmt.Sprintf("indentation: %s at column %d %s; %s column %d, in line with `%s` (line %d)", what, indent+1, place, verb, best.col+1, best.text, best.line)
		if continued {
			f.msg += fmt.Sprintf("; if the value of `%s:` goes on, write it as a block (`%s: |`) or quote it", sc.mapping().lastKey, sc.mapping().lastKey)
		}
	default:
		if place == "" {
			place = "belongs to " + best.describe()
		}
		f.msg = fmt.Sprintf("indentation: %s at column %d %s; %s column %d, %s", what, indent+1, place, verb, best.col+1, best.alignment())
	}
	return f
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// open starts the blocks of a line nested under parent: under a key
// with no value yet, under a lone dash, or (nil) at the top level.
func (sc *indentScan) open(n, indent int, trimmed string, s lineShape, parent *block) {
	typ := sc.root
	nested := &block{col: indent, line: n, text: firstWords(trimmed)}
	if parent != nil {
		parent.awaiting = false
		typ = parent.typ
		switch {
		case parent.seq:
			nested.list = parent
		case parent.typ != nil && parent.typ.Kind() == reflect.Struct:
			typ = nil
			if f := fieldsOf(parent.typ).byKey[parent.lastKey]; f != nil {
				typ = f.typ
			}
			nested.holder, nested.holderLine = parent.lastKey, parent.lastLine
		default:
			if typ != nil {
				typ = typ.Elem() // a map's values
			}
			nested.holder, nested.holderLine = parent.lastKey, parent.lastLine
		}
	}
	sc.stack = append(sc.stack, nested)
	if len(s.dashes) > 0 {
		nested.seq, nested.typ = true, typ
		sc.item(n, trimmed, s, nested)
		return
	}
	nested.first, nested.typ = s.key, elem(typ)
	sc.entry(n, nested, s)
}

// item starts a new item of list l: its own nested lists and mapping.
func (sc *indentScan) item(n int, trimmed string, s lineShape, l *block) {
	l.awaiting = false
	itemType := l.typ
	if itemType != nil && itemType.Kind() == reflect.Slice {
		itemType = itemType.Elem()
	}
	parent, text := l, firstWords(trimmed)
	for _, d := range s.dashes[1:] {
		inner := &block{col: d, seq: true, line: n, text: text, typ: itemType}
		sc.stack = append(sc.stack, inner)
		parent = inner
	}
	switch {
	case s.key != "":
		m := &block{col: s.keyCol, line: n, text: text, first: s.key, list: l, typ: elem(itemType)}
		sc.stack = append(sc.stack, m)
		sc.entry(n, m, s)
	case s.rest == "" || opens(s.rest):
		parent.awaiting = true // "-" alone: the item's value follows
	}
}

// entry records key: value as the last entry of mapping m.
func (sc *indentScan) entry(n int, m *block, s lineShape) {
	m.lastKey, m.lastLine = s.key, n
	m.valued, m.inline, m.awaiting = false, false, false
	switch v := s.value; {
	case opens(v):
		m.awaiting = true
	case v[0] == '|' || v[0] == '>':
		sc.skipAbove = m.col
	case strings.ContainsRune("[{\"'*", rune(v[0])):
		// a flow collection or a quoted string (scanFlow skips the lines
		// it spans), or an alias
		m.valued = true
	default:
		m.valued, m.inline = true, true
	}
}

// scanFlow follows the brackets and quotes of a line's values, so the
// lines of a flow collection or a quoted string spanning lines are not
// read as blocks.
func (sc *indentScan) scanFlow(text string) {
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case sc.quote != 0:
			switch {
			case c == '\\' && sc.quote == '"':
				i++
			case c == sc.quote:
				sc.quote = 0
			}
		case c == '#' && (i == 0 || text[i-1] == ' '):
			return
		case c == '"' || (c == '\'' && (i == 0 || strings.ContainsRune(" [{,:", rune(text[i-1])))):
			sc.quote = c
		case c == '[' || c == '{':
			sc.flow++
		case (c == ']' || c == '}') && sc.flow > 0:
			sc.flow--
		}
	}
}

// tab reports a tab in the indentation of line n, and how many spaces
// put the line where it seems to belong: under a key waiting for its
// value, or in the open mapping that accepts its key.
func (sc *indentScan) tab(n, spaces int, text string) indentFinding {
	f := indentFinding{line: n, col: spaces + 1, from: n}
	f.msg = fmt.Sprintf("indentation: a tab indents line %d; YAML indents with spaces only: replace it with spaces", n)
	s := shape(strings.TrimLeft(text, " \t"))
	if top := sc.top(); top != nil && !top.seq && top.awaiting {
		col := top.col + max(sc.unit, 2)
		f.msg += fmt.Sprintf("; with %d spaces, the line is under `%s:` (line %d)", col, top.lastKey, top.lastLine)
		return f
	}
	if s.key != "" && len(s.dashes) == 0 {
		for i := len(sc.stack) - 1; i >= 0; i-- {
			if b := sc.stack[i]; !b.seq && b.accepts(s.key) {
				f.msg += fmt.Sprintf("; with %d spaces, `%s:` is at column %d, %s", b.col, s.key, b.col+1, b.alignment())
				return f
			}
		}
	}
	if sc.unit > 0 {
		f.msg += fmt.Sprintf(" (this file indents by %d)", sc.unit)
	}
	return f
}

// alignment says where a mapping's keys are: under the first key of a
// list item ("under `id`"), else in line with the first key.
func (b *block) alignment() string {
	if b.list != nil {
		return fmt.Sprintf("under `%s`", b.first)
	}
	return fmt.Sprintf("in line with `%s:` (line %d)", b.first, b.line)
}

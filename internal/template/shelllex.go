package template

import (
	"strings"
)

// shellLexer follows the quoting of a shell line as far as ParseShell needs:
// which quotes, substitutions and here-documents a {{ }} segment is in, and
// the words of the simple commands around it. It does not have to be a
// complete parser: a segment becomes a variable reference in every context,
// and the shell never parses a variable's value, so a context misread here
// costs at worst word splitting, never code. What it must find are the
// places where a value is code even as a variable (see codeArgs).
type shellLexer struct {
	bash   bool
	frames []*frame
	errs   []shellError
}

type shellError struct {
	offset int
	msg    string
}

type frameKind uint8

const (
	fCommand frameKind = iota // unquoted commands: the line, $( ), ( ), <( ), ` `
	fDouble                   // "…", and bash's $"…"
	fSingle                   // '…'
	fANSI                     // bash's $'…'
	fParam                    // ${…}
	fArith                    // $(( )), (( )), $[ ]
	fHeredoc                  // the body of a here-document
	fComment                  // # to the end of the line
)

// word is a word of a simple command: its text without quotes and escapes
// (a NUL stands for a segment) and the offsets of the segments in it.
type word struct {
	text   strings.Builder
	tpls   []int
	quoted bool
}

type heredoc struct {
	delim  string
	quoted bool // <<'EOF', <<"EOF", <<\EOF: the body is not expanded
	strip  bool // <<-
	cmd    []string
}

type frame struct {
	kind   frameKind
	close  byte // fCommand: ')' or '`' (0 for the line); fArith: ')' or ']'
	depth  int  // parentheses or braces open inside fArith and fParam
	escape bool // a backslash is pending
	dollar bool // the last character was an unquoted, unescaped $

	// fCommand
	words     []*word
	cur       *word
	wantDelim bool // the next word is a here-document's delimiter
	strip     bool
	pending   []heredoc
	piped     []int // segments in the commands piped into the one being read
	test      bool  // inside [[ ]]
	inCase    int   // 1: after case, 2: expecting a pattern, 3: in a case body

	// fHeredoc
	doc  heredoc
	line strings.Builder
}

func (lx *shellLexer) push(f *frame) { lx.frames = append(lx.frames, f) }

func (lx *shellLexer) top() *frame { return lx.frames[len(lx.frames)-1] }

func (lx *shellLexer) pop() {
	if len(lx.frames) > 1 {
		lx.frames = lx.frames[:len(lx.frames)-1]
	}
}

func (lx *shellLexer) fail(offset int, msg string) {
	lx.errs = append(lx.errs, shellError{offset, msg})
}

// word returns the word being read by the nearest command frame, when the
// frames above it are quotes within that word, else nil.
func (lx *shellLexer) word() *word {
	for i := len(lx.frames) - 1; i >= 0; i-- {
		switch f := lx.frames[i]; f.kind {
		case fCommand:
			if f.cur == nil {
				f.cur = &word{}
			}
			return f.cur
		case fDouble, fSingle, fANSI:
			continue
		}
		return nil
	}
	return nil
}

func (lx *shellLexer) char(c byte) {
	if w := lx.word(); w != nil {
		w.text.WriteByte(c)
	}
}

// startWord marks that a word has begun in the nearest command frame
// (a quote or a substitution), without adding text to it.
func (lx *shellLexer) startWord(quoted bool) {
	if w := lx.word(); w != nil && quoted {
		w.quoted = true
	}
	for i := len(lx.frames) - 1; i >= 0; i-- {
		if f := lx.frames[i]; f.kind == fCommand {
			if f.cur == nil {
				f.cur = &word{quoted: quoted}
			}
			return
		}
	}
}

func (lx *shellLexer) feed(s string) {
	for i := 0; i < len(s); {
		i = lx.step(s, i)
	}
}

// step reads s[i] (and what follows it when it is one token) in the
// context of the top frame, and returns where to go on.
func (lx *shellLexer) step(s string, i int) int {
	f := lx.top()
	c := s[i]
	f.dollar = false
	if f.escape {
		f.escape = false
		if c != '\n' || f.kind == fANSI {
			lx.char(c)
		}
		return i + 1
	}
	switch f.kind {
	case fSingle:
		if c == '\'' {
			lx.pop()
		} else {
			lx.char(c)
		}
		return i + 1
	case fANSI:
		switch c {
		case '\\':
			f.escape = true
		case '\'':
			lx.pop()
		default:
			lx.char(c)
		}
		return i + 1
	case fComment:
		if c == '\n' {
			lx.pop()
			return i // the command frame ends its command
		}
		return i + 1
	case fHeredoc:
		return lx.heredocStep(f, s, i)
	case fDouble:
		switch c {
		case '\\':
			f.escape = true
			return i + 1
		case '"':
			lx.pop()
			return i + 1
		}
		if n, ok := lx.expansion(s, i, false); ok {
			return n
		}
		lx.char(c)
		return i + 1
	case fParam:
		switch c {
		case '\\':
			f.escape = true
		case '{':
			f.depth++
		case '}':
			if f.depth == 0 {
				lx.pop()
			} else {
				f.depth--
			}
		default:
			return lx.quoteOrExpansion(s, i)
		}
		return i + 1
	case fArith:
		switch c {
		case '(':
			f.depth++
		case ')', ']':
			if f.depth > 0 && c == ')' {
				f.depth--
			} else if c == f.close {
				lx.pop()
				if c == ')' && i+1 < len(s) && s[i+1] == ')' {
					return i + 2
				}
			}
		default:
			return lx.quoteOrExpansion(s, i)
		}
		return i + 1
	}
	return lx.commandStep(f, s, i)
}

// expansion starts the $…, ${…}, $(…), $((…)) or `…` at s[i], if any.
func (lx *shellLexer) expansion(s string, i int, unquoted bool) (int, bool) {
	switch s[i] {
	case '`':
		lx.startWord(false)
		lx.push(&frame{kind: fCommand, close: '`'})
		return i + 1, true
	case '$':
	default:
		return 0, false
	}
	lx.startWord(false)
	next := byte(0)
	if i+1 < len(s) {
		next = s[i+1]
	}
	switch {
	case next == '(' && i+2 < len(s) && s[i+2] == '(':
		lx.push(&frame{kind: fArith, close: ')'})
		return i + 3, true
	case next == '(':
		lx.push(&frame{kind: fCommand, close: ')'})
		return i + 2, true
	case next == '{':
		lx.push(&frame{kind: fParam})
		return i + 2, true
	case next == '[' && lx.bash:
		lx.push(&frame{kind: fArith, close: ']'})
		return i + 2, true
	case next == '\'' && unquoted && lx.bash:
		lx.startWord(true)
		lx.push(&frame{kind: fANSI})
		return i + 2, true
	case next == '"' && unquoted && lx.bash:
		lx.startWord(true)
		lx.push(&frame{kind: fDouble})
		return i + 2, true
	}
	lx.char('$')
	lx.top().dollar = true
	return i + 1, true
}

// quoteOrExpansion starts the quote or expansion at s[i] within ${…} or
// an arithmetic expression, if any.
func (lx *shellLexer) quoteOrExpansion(s string, i int) int {
	switch s[i] {
	case '\'':
		lx.push(&frame{kind: fSingle})
	case '"':
		lx.push(&frame{kind: fDouble})
	default:
		if n, ok := lx.expansion(s, i, false); ok {
			return n
		}
	}
	return i + 1
}

// commandStep reads s[i] outside quotes.
func (lx *shellLexer) commandStep(f *frame, s string, i int) int {
	c := s[i]
	next := byte(0)
	if i+1 < len(s) {
		next = s[i+1]
	}
	switch c {
	case '\\':
		lx.startWord(true)
		f.escape = true
		return i + 1
	case '\'':
		lx.startWord(true)
		lx.push(&frame{kind: fSingle})
		return i + 1
	case '"':
		lx.startWord(true)
		lx.push(&frame{kind: fDouble})
		return i + 1
	case '`':
		if f.close == '`' {
			lx.endCommand(f)
			lx.pop()
			return i + 1
		}
	case '#':
		if f.cur == nil {
			lx.push(&frame{kind: fComment})
			return i + 1
		}
	case ' ', '\t':
		lx.endWord(f)
		return i + 1
	case '\n':
		lx.endWord(f)
		lx.endCommand(f)
		lx.startHeredocs(f)
		return i + 1
	case ';', '&', '|':
		lx.endWord(f)
		if f.test && (c == '&' || c == '|') {
			return i + 1
		}
		if c == '|' && next != '|' && (i == 0 || s[i-1] != '|') {
			lx.endPiped(f)
			return i + 1
		}
		lx.endCommand(f)
		if c == ';' && next == ';' && f.inCase != 0 {
			f.inCase = 2
			return i + 2
		}
		return i + 1
	case '(':
		lx.endWord(f)
		switch {
		case f.test:
		case f.inCase == 2:
		case next == ')': // a function definition, f()
			return i + 2
		case next == '(' && len(f.words) == 0:
			lx.push(&frame{kind: fArith, close: ')'})
			return i + 2
		default:
			lx.endCommand(f)
			lx.push(&frame{kind: fCommand, close: ')'})
		}
		return i + 1
	case ')':
		lx.endWord(f)
		switch {
		case f.test:
		case f.inCase == 2: // the end of a pattern, which is data
			f.words = f.words[:0]
			f.inCase = 3
		case f.close == ')':
			lx.endCommand(f)
			lx.pop()
		}
		return i + 1
	case '<', '>':
		lx.endWord(f)
		if f.test {
			return i + 1
		}
		if next == '(' {
			lx.startWord(false)
			lx.push(&frame{kind: fCommand, close: ')'})
			return i + 2
		}
		if c == '<' && next == '<' {
			if i+2 < len(s) && s[i+2] == '<' {
				return i + 3
			}
			f.wantDelim = true
			f.strip = i+2 < len(s) && s[i+2] == '-'
			if f.strip {
				return i + 3
			}
			return i + 2
		}
		return i + 1
	}
	if n, ok := lx.expansion(s, i, true); ok {
		return n
	}
	lx.startWord(false)
	lx.char(c)
	return i + 1
}

// endWord ends the word being read, if any.
func (lx *shellLexer) endWord(f *frame) {
	w := f.cur
	if w == nil {
		return
	}
	f.cur = nil
	text := w.text.String()
	if f.wantDelim {
		f.wantDelim = false
		f.pending = append(f.pending, heredoc{delim: text, quoted: w.quoted, strip: f.strip, cmd: words(f.words)})
		return
	}
	if len(f.words) == 0 && !w.quoted {
		switch text {
		case "if", "then", "elif", "else", "fi", "do", "done", "while", "until", "!", "{", "}", "time":
			return // a reserved word: the command is what follows
		case "case":
			f.inCase = 1
		case "[[":
			f.test = true
		}
	}
	switch {
	case f.inCase == 1 && text == "in":
		f.inCase = 2
		f.words = f.words[:0]
		return
	case f.inCase != 0 && text == "esac":
		f.inCase = 0
		lx.endCommand(f)
		return
	case f.test && text == "]]":
		f.words = append(f.words, w)
		lx.endCommand(f)
		return
	}
	f.words = append(f.words, w)
}

func words(ws []*word) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.text.String()
	}
	return out
}

// endCommand checks the simple command just read for segments in words
// that are code, and starts the next one.
func (lx *shellLexer) endCommand(f *frame) {
	lx.endWord(f)
	if len(f.words) > 0 {
		ws := words(f.words)
		why := codeArgs(ws, f.test)
		for i, w := range f.words {
			for _, off := range w.tpls {
				if why[i] != "" {
					lx.fail(off, why[i])
				}
			}
		}
	}
	if len(f.piped) > 0 {
		if who := stdinCode(words(f.words)); who != "" {
			for _, off := range f.piped {
				lx.fail(off, "a {{ }} piped into "+who+", which runs its input as code: pass the value as an argument or environment variable instead")
			}
		}
	}
	f.words = f.words[:0]
	f.piped = f.piped[:0]
	f.test = false
	if f.inCase == 1 {
		f.inCase = 0
	}
}

// endPiped ends a command whose output the next command of the pipeline
// reads, keeping the segments in it for that command's check.
func (lx *shellLexer) endPiped(f *frame) {
	lx.endWord(f)
	var tpls []int
	for _, w := range f.words {
		tpls = append(tpls, w.tpls...)
	}
	tpls = append(tpls, f.piped...)
	lx.endCommand(f)
	f.piped = tpls
}

// startHeredocs begins the bodies of the here-documents that the line
// just ended introduced.
func (lx *shellLexer) startHeredocs(f *frame) {
	if len(f.pending) == 0 {
		return
	}
	doc := f.pending[0]
	f.pending = f.pending[1:]
	lx.push(&frame{kind: fHeredoc, doc: doc})
}

func (lx *shellLexer) heredocStep(f *frame, s string, i int) int {
	c := s[i]
	if c == '\n' {
		line := f.line.String()
		f.line.Reset()
		if f.doc.strip {
			line = strings.TrimLeft(line, "\t")
		}
		if line == f.doc.delim {
			lx.pop()
			lx.startHeredocs(lx.top())
		}
		return i + 1
	}
	f.line.WriteByte(c)
	if f.doc.quoted {
		return i + 1
	}
	if c == '\\' {
		f.escape = true
		return i + 1
	}
	if n, ok := lx.expansion(s, i, false); ok {
		f.line.WriteString(s[i+1 : n])
		return n
	}
	return i + 1
}

// finish ends the commands still open at the end of the line.
func (lx *shellLexer) finish() {
	for i := len(lx.frames) - 1; i >= 0; i-- {
		if f := lx.frames[i]; f.kind == fCommand {
			lx.endCommand(f)
		}
	}
}

// segment returns the reference that stands for the segment at offset,
// read as the variable name, quoted for the context it is in, and notes
// the places where a value would still be code.
func (lx *shellLexer) segment(name string, offset int) string {
	f := lx.top()
	if f.escape {
		lx.fail(offset, "a {{ }} right after a backslash: remove the backslash, the value is inserted as it is")
		f.escape = false
	}
	if f.dollar {
		lx.fail(offset, "a {{ }} right after $: the value is inserted as it is; write $ outside the braces' reach, such as ${X}")
		f.dollar = false
	}
	ref := "${" + name + "}"
	switch f.kind {
	case fCommand:
		ref = `"` + ref + `"`
	case fSingle:
		ref = `'"` + ref + `"'`
	case fANSI:
		ref = `'"` + ref + `"$'`
	case fHeredoc:
		f.line.WriteByte(0)
	case fComment:
		return ref // not run: nothing to check
	}
	if msg := lx.codeContext(); msg != "" {
		lx.fail(offset, msg)
	}
	lx.mark(offset)
	return ref
}

// codeContext returns why a value would be code in the context of the
// frames open, or "": in arithmetic or ${…} at any depth (the output of a
// $( ) inside $(( )) is arithmetic too), or in a here-document that is
// quoted or that an interpreter runs.
func (lx *shellLexer) codeContext() string {
	for _, f := range lx.frames {
		switch f.kind {
		case fParam:
			return "a {{ }} inside ${…}: write the whole value as one expression, such as {{ input.x ?? 'default' }}"
		case fArith:
			return "a {{ }} in shell arithmetic is evaluated as code (a[$(cmd)] runs cmd): compute the number in the expression instead ({{ int(input.n) + 1 }} outside $(( ))), or check that the value is a number first"
		case fHeredoc:
			if f.doc.quoted {
				return "a {{ }} in a quoted here-document (<<'" + f.doc.delim + "') is not expanded: write <<" + f.doc.delim + " without quotes"
			}
			if who := stdinCode(f.doc.cmd); who != "" {
				return "a {{ }} in a here-document that " + who + " reads as code: pass the value as an argument or environment variable instead"
			}
		}
	}
	return ""
}

// mark records the segment in the words that contain it: the word of each
// command frame it is nested in, but for the command whose here-document
// it is in, which has already ended.
func (lx *shellLexer) mark(offset int) {
	lx.char(0)
	skip := false
	for i := len(lx.frames) - 1; i >= 0; i-- {
		switch f := lx.frames[i]; {
		case f.kind == fHeredoc:
			skip = true
		case f.kind != fCommand:
		case skip:
			skip = false
		default:
			if f.cur == nil {
				f.cur = &word{}
			}
			f.cur.tpls = append(f.cur.tpls, offset)
		}
	}
}

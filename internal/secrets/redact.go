package secrets

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Mask is what a redacted value is replaced by.
const Mask = "***"

// MinRedactedLen is the shortest value whose encoded forms are redacted
// too: the encodings of shorter ones would mask ordinary text, and a
// shorter value is hidden wherever its characters appear.
const MinRedactedLen = 4

const minEncodedLen = MinRedactedLen

// Redactor replaces secret values by ***: each value, the value without
// surrounding white space, each line of a multi-line value, and, for
// values of 4 characters or more, their encoded forms:
//
//   - URL query and path escaping, and full percent-encoding (every byte
//     %XX, in upper-, lower- or mixed-case hex);
//   - base64 (standard and URL alphabets), also inside a longer encoded
//     text (such as an HTTP Basic Authorization header) at any of the three
//     alignments, and also wrapped onto several lines (base64's 76 columns,
//     PEM's 64, or any other width);
//   - hex, lower- and upper-case, wrapped or not;
//   - the JSON string escapes of encoders (Go's, with and without HTML
//     escaping, and the ASCII-only form with \uXXXX escapes of Python and
//     PHP, with or without \/).
//
// Where an encoding is cut by a line break, each piece of 4 characters or
// more is masked; a piece of up to 3 characters at the break may stay, as
// may the up to 2 characters at each end of a base64 core that depend on
// its neighbours too. A nil *Redactor redacts nothing.
type Redactor struct {
	r      *strings.Replacer
	maxLen int
	// filter, when set, tells text that holds none of the strings at a
	// few nanoseconds a byte, so that most lines skip the replacer and
	// its copy.
	filter *prefilter
	// plain are the values and their lines, longest first: the
	// percent-decoding pass looks for them in decoded text.
	plain []string
	// wrapped finds pieces of the base64 and hex forms at the edges of
	// lines, where a tool that wraps its output cut them.
	wrapped *edgeIndex
}

// NewRedactor returns a redactor of values, or nil when there is nothing
// to hide.
func NewRedactor(values []string) *Redactor {
	seen := map[string]bool{}
	var olds, plain, wrappable []string
	add := func(v string, minLen int) {
		if len(v) >= minLen && !seen[v] {
			seen[v] = true
			olds = append(olds, v)
		}
	}
	for _, v := range values {
		add(v, 1)
		trimmed := strings.TrimSpace(v)
		add(trimmed, 1)
		for _, line := range strings.Split(v, "\n") {
			add(strings.TrimSpace(line), minEncodedLen)
		}
		if len(trimmed) < minEncodedLen {
			continue
		}
		forms := []string{trimmed}
		if v != trimmed {
			forms = append(forms, v)
		}
		for _, form := range forms {
			plain = append(plain, form)
			add(url.QueryEscape(form), minEncodedLen)
			add(url.PathEscape(form), minEncodedLen)
			for _, j := range jsonForms(form) {
				add(j, minEncodedLen)
			}
			h := hex.EncodeToString([]byte(form))
			wrappable = append(wrappable, h, strings.ToUpper(h))
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
				add(enc.EncodeToString([]byte(form)), minEncodedLen)
				wrappable = append(wrappable, base64Cores(enc, form)...)
			}
		}
	}
	// The URL alphabet's cores are the standard ones where the value
	// encodes without + or /: index each form once.
	slices.Sort(wrappable)
	wrappable = slices.Compact(wrappable)
	for _, w := range wrappable {
		add(w, minEncodedLen)
	}
	if len(olds) == 0 {
		return nil
	}
	// Longer strings first, so a secret that contains another is hidden whole.
	sort.Slice(olds, func(i, j int) bool { return len(olds[i]) > len(olds[j]) })
	pairs := make([]string, 0, 2*len(olds))
	for _, o := range olds {
		pairs = append(pairs, o, Mask)
	}
	sort.Slice(plain, func(i, j int) bool { return len(plain[i]) > len(plain[j]) })
	maxLen := len(olds[0])
	if len(plain) > 0 {
		// Fully percent-encoded, the longest value takes 3 bytes a byte.
		maxLen = max(maxLen, 3*len(plain[0]))
	}
	return &Redactor{
		r:       strings.NewReplacer(pairs...),
		maxLen:  maxLen,
		filter:  newPrefilter(olds),
		plain:   plain,
		wrapped: newEdgeIndex(wrappable),
	}
}

// jsonForms returns v as the inside of a JSON string, as encoders write
// it, or nothing when they all write it as it is.
func jsonForms(v string) []string {
	if !strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r >= 0x7f || strings.ContainsRune(`"\/<>&`, r) }) {
		return nil
	}
	var out []string
	for _, html := range []bool{true, false} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		if err := enc.Encode(v); err == nil {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(b.String()), `"`), `"`))
		}
	}
	out = append(out, asciiJSON(v, "%04x"), asciiJSON(v, "%04X"))
	for _, j := range out[:len(out):len(out)] {
		if strings.Contains(j, "/") {
			out = append(out, strings.ReplaceAll(j, "/", `\/`))
		}
	}
	return out
}

// asciiJSON is v as the inside of a JSON string with every character
// outside printable ASCII escaped as \uXXXX (UTF-16), in the hex case of
// format: what Python's json.dumps and PHP's json_encode write.
func asciiJSON(v, format string) string {
	var b strings.Builder
	for _, r := range v {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u`+format+`\u`+format, r1, r2)
		default:
			if r == utf8.RuneError {
				r = 0xfffd
			}
			fmt.Fprintf(&b, `\u`+format, r)
		}
	}
	return b.String()
}

// prefilter finds the places where one of a set of strings of 4 bytes or
// more may start: a bitset of their first two bytes (8 KiB, which stays in
// the CPU's nearest cache) rules out most places, and a set of their first
// four bytes the rest.
type prefilter struct {
	pairs [1 << 16 / 64]uint64
	quads map[uint32]struct{}
}

// newPrefilter returns the prefilter of olds, or nil when one of them is
// shorter than 4 bytes.
func newPrefilter(olds []string) *prefilter {
	p := &prefilter{quads: make(map[uint32]struct{}, len(olds))}
	for _, o := range olds {
		if len(o) < 4 {
			return nil
		}
		p.addPair(o)
		p.quads[quad(o, 0)] = struct{}{}
	}
	return p
}

func (p *prefilter) addPair(s string) {
	pair := uint16(s[0]) | uint16(s[1])<<8
	p.pairs[pair>>6] |= 1 << (pair & 63)
}

func (p *prefilter) hasPair(s string, i int) bool {
	pair := uint16(s[i]) | uint16(s[i+1])<<8
	return p.pairs[pair>>6]&(1<<(pair&63)) != 0
}

func quad(s string, i int) uint32 {
	return uint32(s[i]) | uint32(s[i+1])<<8 | uint32(s[i+2])<<16 | uint32(s[i+3])<<24
}

// mayHold reports whether one of the strings may occur in s.
func (p *prefilter) mayHold(s string) bool {
	for i := 0; i+4 <= len(s); i++ {
		if !p.hasPair(s, i) {
			continue
		}
		if _, ok := p.quads[quad(s, i)]; ok {
			return true
		}
	}
	return false
}

// base64Cores returns, for each of the three places a value can start at
// within a base64 text, the characters of its encoding that depend on the
// value alone.
func base64Cores(enc *base64.Encoding, v string) []string {
	var cores []string
	for k := range 3 {
		e := enc.EncodeToString(append(make([]byte, k), v...))
		from := (8*k + 5) / 6
		to := 8 * (k + len(v)) / 6
		if to-from >= minEncodedLen {
			cores = append(cores, e[from:to])
		}
	}
	return cores
}

// edgeIndex finds, at the start and the end of a line, the pieces of
// encoded forms that a line break cut: a line that ends with the first n
// characters of a form, one that starts with its last n, and one that lies
// wholly inside it. It indexes every 4-character run of every form in a
// chained hash table of slices, built in a few allocations: every run
// start pays for it.
type edgeIndex struct {
	first prefilter // pairs: the first two bytes of every run
	forms []string
	heads []int32 // by hash: 1 + the index in runs of the first run, or 0
	runs  []edgeRun
	shift uint
}

// edgeRun is the run of 4 characters of forms[form] that starts at at.
type edgeRun struct {
	key      uint32
	form, at int32
	next     int32 // 1 + the index of the next run of the same hash, or 0
}

func newEdgeIndex(forms []string) *edgeIndex {
	n := 0
	for _, f := range forms {
		n += max(0, len(f)-3)
	}
	if n == 0 {
		return nil
	}
	bits := uint(bitsLen(n))
	x := &edgeIndex{forms: forms, heads: make([]int32, 1<<bits), runs: make([]edgeRun, 0, n), shift: 32 - bits}
	for i, f := range forms {
		for at := 0; at+4 <= len(f); at++ {
			x.first.addPair(f[at:])
			key := quad(f, at)
			h := x.hash(key)
			x.runs = append(x.runs, edgeRun{key: key, form: int32(i), at: int32(at), next: x.heads[h]})
			x.heads[h] = int32(len(x.runs))
		}
	}
	return x
}

func bitsLen(n int) int {
	b := 0
	for 1<<b < n {
		b++
	}
	return b
}

func (x *edgeIndex) hash(key uint32) uint32 { return key * 0x9e3779b1 >> x.shift }

// each calls fn with the form and offset of every run equal to the 4 bytes
// of line at i.
func (x *edgeIndex) each(line string, i int, fn func(form string, at int)) {
	if !x.first.hasPair(line, i) {
		return
	}
	key := quad(line, i)
	for r := x.heads[x.hash(key)]; r != 0; r = x.runs[r-1].next {
		if run := x.runs[r-1]; run.key == key {
			fn(x.forms[run.form], int(run.at))
		}
	}
}

// head returns how many bytes at the start of line are a piece of a form
// that goes on before the line: its end, or a middle part that the whole
// line is.
func (x *edgeIndex) head(line string) int {
	n := 0
	if len(line) < 4 {
		return 0
	}
	x.each(line, 0, func(form string, at int) {
		rest := form[at:]
		m := min(len(line), len(rest))
		if m > n && (m == len(rest) || m == len(line)) && line[:m] == rest[:m] {
			n = m
		}
	})
	return n
}

// tail returns how many bytes at the end of line are the start of a form
// that goes on after the line.
func (x *edgeIndex) tail(line string) int {
	n := 0
	if len(line) < 4 {
		return 0
	}
	x.each(line, len(line)-4, func(form string, at int) {
		start := form[:at+4]
		if len(start) > n && strings.HasSuffix(line, start) {
			n = len(start)
		}
	})
	return n
}

// mask masks the pieces at the edges of each line of s.
func (x *edgeIndex) mask(s string) string {
	if x == nil {
		return s
	}
	var b *strings.Builder
	for start := 0; start <= len(s); {
		end := strings.IndexByte(s[start:], '\n')
		next := start + end + 1
		if end < 0 {
			end, next = len(s), len(s)+1
		} else {
			end += start
		}
		line := strings.TrimSuffix(s[start:end], "\r")
		h, t := x.head(line), x.tail(line)
		if h > 0 || t > 0 {
			if b == nil {
				b = &strings.Builder{}
				b.Grow(len(s))
				b.WriteString(s[:start])
			}
			switch {
			case h+t >= len(line):
				b.WriteString(Mask)
			case h > 0 && t > 0:
				b.WriteString(Mask + line[h:len(line)-t] + Mask)
			case h > 0:
				b.WriteString(Mask + line[h:])
			default:
				b.WriteString(line[:len(line)-t] + Mask)
			}
			b.WriteString(s[start+len(line) : min(next, len(s))])
		} else if b != nil {
			b.WriteString(s[start:min(next, len(s))])
		}
		start = next
	}
	if b == nil {
		return s
	}
	return b.String()
}

// unpercent masks the values written fully percent-encoded in s: each
// run of %XX is decoded, whatever the case of its hex, and searched.
func (r *Redactor) unpercent(s string) string {
	var b *strings.Builder
	done := 0 // s[:done] is written to b
	for i := 0; ; {
		j := strings.IndexByte(s[i:], '%')
		if j < 0 {
			break
		}
		j += i
		k := j
		var dec []byte
		for k+2 < len(s) && s[k] == '%' {
			c, ok := unhex(s[k+1], s[k+2])
			if !ok {
				break
			}
			dec = append(dec, c)
			k += 3
		}
		i = max(k, j+1)
		if len(dec) < minEncodedLen {
			continue
		}
		run := maskDecoded(s[j:k], string(dec), r.plain)
		if run == s[j:k] {
			continue
		}
		if b == nil {
			b = &strings.Builder{}
			b.Grow(len(s))
		}
		b.WriteString(s[done:j])
		b.WriteString(run)
		done = k
	}
	if b == nil {
		return s
	}
	b.WriteString(s[done:])
	return b.String()
}

// maskDecoded returns the run of %XX enc, whose bytes are dec, with the
// triplets of each value in values masked.
func maskDecoded(enc, dec string, values []string) string {
	var b strings.Builder
	for p := 0; p < len(dec); {
		hit := ""
		for _, v := range values {
			if strings.HasPrefix(dec[p:], v) {
				hit = v
				break
			}
		}
		if hit != "" {
			b.WriteString(Mask)
			p += len(hit)
			continue
		}
		b.WriteString(enc[3*p : 3*p+3])
		p++
	}
	return b.String()
}

func unhex(a, b byte) (byte, bool) {
	x, ok1 := hexVal(a)
	y, ok2 := hexVal(b)
	return x<<4 | y, ok1 && ok2
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// Redact returns s with every secret form replaced by ***.
func (r *Redactor) Redact(s string) string {
	if r == nil {
		return s
	}
	if len(r.plain) > 0 && strings.IndexByte(s, '%') >= 0 {
		s = r.unpercent(s)
	}
	s = r.wrapped.mask(s)
	if r.filter != nil && !r.filter.mayHold(s) {
		return s
	}
	return r.r.Replace(s)
}

// MaxLen is the length of the longest string the redactor hides; 0 for nil.
// A stream cut into pieces must keep this many bytes minus one back from
// the end of a piece, so no secret straddles two pieces unseen.
func (r *Redactor) MaxLen() int {
	if r == nil {
		return 0
	}
	return r.maxLen
}

package secrets

import (
	"encoding/base64"
	"net/url"
	"sort"
	"strings"
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
// values of 4 characters or more, their URL-encoded and base64 forms,
// including the base64 of the value inside a longer encoded text (such as
// an HTTP Basic Authorization header). A nil *Redactor redacts nothing.
type Redactor struct {
	r      *strings.Replacer
	maxLen int
	// filter, when set, tells text that holds none of the strings at a
	// few nanoseconds a byte, so that most lines skip the replacer and
	// its copy.
	filter *prefilter
}

// NewRedactor returns a redactor of values, or nil when there is nothing
// to hide.
func NewRedactor(values []string) *Redactor {
	seen := map[string]bool{}
	var olds []string
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
		for _, form := range []string{v, trimmed} {
			add(url.QueryEscape(form), minEncodedLen)
			add(url.PathEscape(form), minEncodedLen)
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
				add(enc.EncodeToString([]byte(form)), minEncodedLen)
				for _, core := range base64Cores(enc, form) {
					add(core, minEncodedLen)
				}
			}
		}
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
	return &Redactor{r: strings.NewReplacer(pairs...), maxLen: len(olds[0]), filter: newPrefilter(olds)}
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
		pair := uint16(o[0]) | uint16(o[1])<<8
		p.pairs[pair>>6] |= 1 << (pair & 63)
		p.quads[quad(o, 0)] = struct{}{}
	}
	return p
}

func quad(s string, i int) uint32 {
	return uint32(s[i]) | uint32(s[i+1])<<8 | uint32(s[i+2])<<16 | uint32(s[i+3])<<24
}

// mayHold reports whether one of the strings may occur in s.
func (p *prefilter) mayHold(s string) bool {
	for i := 0; i+4 <= len(s); i++ {
		pair := uint16(s[i]) | uint16(s[i+1])<<8
		if p.pairs[pair>>6]&(1<<(pair&63)) == 0 {
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

// Redact returns s with every secret form replaced by ***.
func (r *Redactor) Redact(s string) string {
	if r == nil || r.filter != nil && !r.filter.mayHold(s) {
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

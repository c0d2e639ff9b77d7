package routinetest

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"github.com/goccy/go-yaml"
)

// Matcher checks one string: equal to Equals, or matching Regex, holding
// Contains, or making the expression Expr true (with the string as value).
// In a test file it is a plain string (Equals) or a mapping with one of
// regex, contains, expr.
type Matcher struct {
	Equals   *string
	Regex    string `yaml:"regex,omitempty"`
	Contains string `yaml:"contains,omitempty"`
	Expr     string `yaml:"expr,omitempty"`

	re   *regexp.Regexp
	prog *vm.Program
}

// UnmarshalYAML reads a plain string or a mapping, and compiles it.
func (m *Matcher) UnmarshalYAML(data []byte) error {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return err
	}
	if _, isMap := v.(map[string]any); !isMap {
		s := fmt.Sprint(v)
		if v == nil {
			s = ""
		}
		m.Equals = &s
		return nil
	}
	type plain Matcher
	if err := yaml.UnmarshalWithOptions(data, (*plain)(m), yaml.Strict()); err != nil {
		return err
	}
	return m.compile()
}

func (m *Matcher) compile() error {
	n := 0
	for _, set := range []bool{m.Regex != "", m.Contains != "", m.Expr != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("a matcher is a string, or a mapping with exactly one of regex, contains, expr")
	}
	var err error
	switch {
	case m.Regex != "":
		if m.re, err = regexp.Compile(m.Regex); err != nil {
			return fmt.Errorf("regex %q: %w", m.Regex, err)
		}
	case m.Expr != "":
		if m.prog, err = expr.Compile(m.Expr, expr.Env(map[string]any{"value": ""}), expr.AsBool()); err != nil {
			return fmt.Errorf("expr %q: %w", m.Expr, err)
		}
	}
	return nil
}

// set reports whether the matcher checks anything.
func (m *Matcher) set() bool {
	return m.Equals != nil || m.Regex != "" || m.Contains != "" || m.Expr != ""
}

// Match returns "" when s matches, else what was wanted.
func (m *Matcher) Match(s string) string {
	switch {
	case m.Equals != nil:
		if s != *m.Equals {
			return fmt.Sprintf("%q", *m.Equals)
		}
	case m.re != nil:
		if !m.re.MatchString(s) {
			return fmt.Sprintf("a match of /%s/", m.Regex)
		}
	case m.Contains != "":
		if !strings.Contains(s, m.Contains) {
			return fmt.Sprintf("text containing %q", m.Contains)
		}
	case m.prog != nil:
		ok, err := expr.Run(m.prog, map[string]any{"value": s})
		if err != nil {
			return fmt.Sprintf("a value for which %s holds (it failed: %v)", m.Expr, err)
		}
		if ok != true {
			return fmt.Sprintf("a value for which %s holds", m.Expr)
		}
	}
	return ""
}

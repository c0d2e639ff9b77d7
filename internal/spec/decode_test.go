package spec

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestDecodeScalars(t *testing.T) {
	t.Parallel()
	r, err := Parse("routine.yaml", []byte(`name: scalars
env:
  FLOAT: 1.10
  INT: 0x1F
  BOOL: yes
  TAGGED: !!str 3
  EMPTY:
  BLOCK: |
    two
    lines
steps:
  - id: a
    run: echo a
`), "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"FLOAT": "1.10", "INT": "0x1F", "BOOL": "yes", "TAGGED": "3", "EMPTY": "", "BLOCK": "two\nlines\n"}
	for k, v := range want {
		if got := r.Env[k]; got != v {
			t.Errorf("env %s = %q, want %q", k, got, v)
		}
	}
}

func TestDecodeIntegerTooLarge(t *testing.T) {
	t.Parallel()
	_, err := Parse("routine.yaml", []byte("name: big\nparallelism: 10000000000000000000\nsteps:\n  - id: a\n    run: echo a\n"), "")
	if p := Problems(err); len(p) != 1 || !strings.Contains(p[0].Message, "too large") {
		t.Errorf("Parse = %v, want one problem saying too large", err)
	}
}

// TestDecodeAliasBombs checks that documents whose aliases expand
// exponentially are cut short.
func TestDecodeAliasBombs(t *testing.T) {
	t.Parallel()
	var list, merge strings.Builder
	list.WriteString("name: bomb\nsteps:\n  - id: a\n    run: echo a\nx0: &x0 [a, a, a, a, a, a, a, a, a, a]\n")
	merge.WriteString("name: bomb\nsteps:\n  - id: a\n    run: echo a\nm0: &m0 {A: a, B: b, C: c, D: d, E: e, F: f, G: g, H: h, I: i, J: j}\n")
	for i := 1; i < 10; i++ {
		p := fmt.Sprintf("*x%d", i-1)
		fmt.Fprintf(&list, "x%d: &x%d [%s]\n", i, i, strings.Repeat(p+", ", 9)+p)
		m := fmt.Sprintf("*m%d", i-1)
		fmt.Fprintf(&merge, "m%d: &m%d {<<: [%s]}\n", i, i, strings.Repeat(m+", ", 9)+m)
	}
	list.WriteString("tags: *x9\n")
	merge.WriteString("env: *m9\n")
	for name, doc := range map[string]string{"list": list.String(), "merge": merge.String()} {
		start := time.Now()
		_, err := Parse("routine.yaml", []byte(doc), "")
		if n := len(Problems(err)); n == 0 || n > 20 || time.Since(start) > 5*time.Second {
			t.Errorf("%s bomb: Parse took %v and found %d problems", name, time.Since(start), n)
		}
	}
}

func TestDecodeRecursiveAlias(t *testing.T) {
	t.Parallel()
	_, err := Parse("routine.yaml", []byte("name: loop\nsteps: &s\n  - id: a\n    run: echo a\n    compensate: *s\n"), "")
	if len(Problems(err)) == 0 {
		t.Errorf("Parse of a recursive alias = %v, want problems", err)
	}
}

package template

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// unique numbers the expressions of the cold benchmarks, so no run of
// them finds its expressions in the cache.
var unique atomic.Int64

func benchmarkRender(b *testing.B, src string) {
	tpl, err := Parse(src)
	if err != nil {
		b.Fatal(err)
	}
	c := testContext()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tpl.Render(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRenderLiteral(b *testing.B) { benchmarkRender(b, "./scripts/extract.sh --verbose") }

func BenchmarkRenderNamed(b *testing.B) { benchmarkRender(b, "Bearer {{TOKEN}}") }

func BenchmarkRenderOutput(b *testing.B) { benchmarkRender(b, "{{ steps.fetch.outputs.url }}") }

func BenchmarkRenderMixed(b *testing.B) {
	benchmarkRender(b, "curl -H 'X-Run: {{ run.id }}' {{ env.CRM_URL }}/tickets/{{ steps.fetch.outputs.n }}?s={{ input.subject }}")
}

func BenchmarkConditionEval(b *testing.B) {
	cond, err := CompileCondition(`steps.fetch.outputs.n == "2" && run.attempt < 3`)
	if err != nil {
		b.Fatal(err)
	}
	c := testContext()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cond.Eval(c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParse parses expressions seen before, as the engine does on
// every run of a routine.
func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("curl {{ env.CRM_URL }}/tickets/{{ steps.fetch.outputs.id }}"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseCold parses expressions never seen before, as loading a
// routine does: a static path and a general expression.
func BenchmarkParseCold(b *testing.B) {
	srcs := make([]string, b.N)
	for i := range srcs {
		n := unique.Add(1)
		srcs[i] = fmt.Sprintf("curl {{ steps.s%d.outputs.id }}/{{ upper(env.X) + '%d' }}", n, n)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for _, src := range srcs {
		if _, err := Parse(src); err != nil {
			b.Fatal(err)
		}
	}
}

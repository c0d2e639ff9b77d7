package spec

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

// unique salts the routines of the cold benchmark, so no run of it finds
// its expressions in the cache of package template.
var unique atomic.Int64

// bigRoutine is a valid routine of n steps that use templates, conditions,
// needs and retries, as a large real routine would. salt makes its
// expressions differ from those of other salts.
func bigRoutine(n int, salt string) []byte {
	var b strings.Builder
	b.WriteString("name: big\nenv:\n  BASE: https://example.com\nsecrets: [TOKEN]\ntriggers:\n  - cron: \"*/5 * * * *\"\n    timezone: Europe/Berlin\nsteps:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - id: step%d\n", i)
		if i > 0 {
			fmt.Fprintf(&b, "    if: steps.step%d.outputs.ok == \"true%s\"\n", i-1, salt)
			fmt.Fprintf(&b, "    run: \"curl -H 'Authorization: {{TOKEN}}' {{ env.BASE }}/{{ steps.step%d.outputs.id }}?run={{ run.id + '%s' }}\"\n", i-1, salt)
		} else {
			b.WriteString("    run: echo ok=true >> \"$ROUTINES_OUTPUT\"\n")
		}
		if i%5 == 4 {
			fmt.Fprintf(&b, "    needs: [step%d, step%d]\n", i-1, i-3)
		}
		b.WriteString("    retry: { attempts: 3, backoff: linear }\n    timeout: 30s\n    env:\n      STEP: \"" + fmt.Sprint(i) + "\"\n")
	}
	b.WriteString("on_failure:\n  - id: page\n    run: echo {{ failure.message }}\n")
	return []byte(b.String())
}

// BenchmarkParse50Steps parses a routine whose expressions were compiled
// before, as a long-running process does.
func BenchmarkParse50Steps(b *testing.B) {
	data := bigRoutine(50, "")
	if _, err := Parse("routine.yaml", data, ""); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("routine.yaml", data, ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParse50StepsCold parses routines whose expressions were never
// compiled, as routines run-once does when it starts.
func BenchmarkParse50StepsCold(b *testing.B) {
	files := make([][]byte, b.N)
	for i := range files {
		files[i] = bigRoutine(50, fmt.Sprint(unique.Add(1)))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for _, data := range files {
		if _, err := Parse("routine.yaml", data, ""); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseInvalid(b *testing.B) {
	data, err := os.ReadFile("testdata/multiple-errors.txtar")
	if err != nil {
		b.Fatal(err)
	}
	yaml, _ := parseArchive(data).file("routine.yaml")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("routine.yaml", yaml, ""); err == nil {
			b.Fatal("no problems")
		}
	}
}

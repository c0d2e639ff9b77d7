// Package steps holds the step kinds a routine can use (run, state, emit,
// sql, http, slack, email, llm, classify, agent, routine), each
// implementing stepkind.Kind; main builds a stepkind.Registry from them.
// The engine knows kinds only through that registry, so tests can swap in
// mocks and a new kind lands here without touching the engine.
package steps

import "github.com/routines-dev/routines/internal/stepkind"

// holdsSecret reports whether s contains a value of one of the run's
// secrets, for kinds that keep data where the engine does not redact it.
func holdsSecret(x *stepkind.Execution, s string) bool {
	return x.Redact != nil && x.Redact(s) != s
}

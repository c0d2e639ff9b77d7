//go:build !linux

package steps

import (
	"context"

	"github.com/routines-dev/routines/internal/sandbox"
	"github.com/routines-dev/routines/internal/stepkind"
)

// Execute implements Kind: off Linux there is no sandbox to run the
// command in, and the error says so, for good: no retry gets one. The
// commands refuse such a routine before it runs; this stops a run step
// that gets this far all the same (one of a sub-routine).
func (RunKind) Execute(context.Context, *stepkind.Execution) (*stepkind.Result, error) {
	return nil, stepkind.Fail("", false, sandbox.Supported())
}

package cli

import (
	"fmt"
	"io"

	"github.com/routines-dev/routines/internal/routine"
)

// writeWarnings writes what validation noticed in a valid routine that
// may not mean what was meant (such as how a six-field cron is read).
func writeWarnings(w io.Writer, r *routine.Routine) {
	for _, p := range r.Warnings {
		fmt.Fprintln(w, p)
	}
}

package trigger

import (
	"context"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/clock"
)

// nextArm waits until the code under test arms a timer on clk (goes back
// to sleep) and returns its deadline.
func nextArm(t *testing.T, clk *clock.Virtual) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	at, err := clk.WaitArmed(ctx)
	if err != nil {
		t.Fatal("no timer armed within 5s")
	}
	return at
}

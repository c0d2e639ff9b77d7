package routine_test

import (
	"testing"

	"github.com/routines-dev/routines/internal/routine"
)

func TestPlacementMetBy(t *testing.T) {
	t.Parallel()
	worker := routine.NewPlacement("eu-west", []string{"ssd", "gpu"})
	for _, tc := range []struct {
		need routine.Placement
		want bool
	}{
		{routine.Placement{}, true},
		{routine.NewPlacement("eu-west", nil), true},
		{routine.NewPlacement("us-east", nil), false},
		{routine.NewPlacement("", []string{"gpu"}), true},
		{routine.NewPlacement("eu-west", []string{"gpu", "ssd"}), true},
		{routine.NewPlacement("eu-west", []string{"gpu", "arm"}), false},
		{routine.NewPlacement("", []string{"arm"}), false},
	} {
		if got := tc.need.MetBy(worker); got != tc.want {
			t.Errorf("%v met by %v = %v, want %v", tc.need, worker, got, tc.want)
		}
	}
	// A worker without region or labels runs only what asks for nothing.
	if routine.NewPlacement("eu-west", nil).MetBy(routine.Placement{}) || !(routine.Placement{}).MetBy(routine.Placement{}) {
		t.Error("a worker of no placement: want it to run only runs that ask for nothing")
	}
}

func TestPlacementString(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		p    routine.Placement
		want string
	}{
		{routine.Placement{}, "anywhere"},
		{routine.NewPlacement("eu-west", nil), "region eu-west"},
		{routine.NewPlacement("", []string{"gpu"}), "label gpu"},
		{routine.NewPlacement("eu-west", []string{"ssd", "gpu", "ssd"}), "region eu-west, labels gpu, ssd"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.p, got, tc.want)
		}
	}
}

package scheduler_test

import (
	"maps"
	"testing"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
)

// The ceilings of namespaces group the routines of the namespaces that
// have one, for the claims; with none, the claims get none (their fast
// path).
func TestCatalogGroups(t *testing.T) {
	t.Parallel()
	c := scheduler.NewCatalog([]*routine.Routine{
		{Name: "a1", Namespace: "team-a"}, {Name: "a2", Namespace: "team-a"},
		{Name: "b", Namespace: "team-b"}, {Name: "d"},
	})
	if groups, ceilings := c.Groups(); groups != nil || ceilings != nil {
		t.Fatalf("Groups with no ceilings = %v, %v; want nil, nil", groups, ceilings)
	}
	c.SetNamespaceCeilings(map[string]int{"team-a": 2, "default": 1})
	groups, ceilings := c.Groups()
	if want := map[string]string{"a1": "team-a", "a2": "team-a", "d": "default"}; !maps.Equal(groups, want) {
		t.Errorf("groups = %v, want %v", groups, want)
	}
	if want := map[string]int{"team-a": 2, "default": 1}; !maps.Equal(ceilings, want) {
		t.Errorf("ceilings = %v, want %v", ceilings, want)
	}
	c.SetNamespaceCeilings(map[string]int{})
	if groups, _ := c.Groups(); groups != nil {
		t.Errorf("Groups after the ceilings were lifted = %v, want nil", groups)
	}
}

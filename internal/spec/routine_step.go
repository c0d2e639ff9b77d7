package spec

import (
	"maps"
	"slices"

	"github.com/routines-dev/routines/internal/routine"
)

// routineStep checks a routine: action: the name of another routine, not
// a template and not this routine itself, and input names as inputs are
// named. Whether the routine exists, its inputs and cycles through other
// routines are checked when the project's routines are loaded together.
func (v *validator) routineStep(p string, a *routine.RoutineAction) {
	switch {
	case a.Name == "":
		v.errorf(p, "%s needs name: the routine to call", human(p))
	case !namePattern.MatchString(a.Name):
		v.errorf(p+".name", "%s.name %q is not a routine name (lower-case letters, digits and dashes; not a template)", human(p), a.Name)
	case a.Name == v.r.Name:
		v.errorf(p+".name", "%s calls %s itself: a routine may not call itself", human(p), a.Name)
	}
	for _, k := range slices.Sorted(maps.Keys(a.Input)) {
		if !inputPattern.MatchString(k) {
			v.keyErrorf(p+".input."+k, "input name %q must be lower-case letters, digits and _, such as ticket_id", k)
		}
	}
}

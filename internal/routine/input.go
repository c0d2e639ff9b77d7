package routine

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// InputNames returns the names of the declared inputs, sorted.
func (r *Routine) InputNames() []string {
	return slices.Sorted(maps.Keys(r.Inputs))
}

// CheckInput checks input against the routine's declared inputs: no
// undeclared key, every required one present. A routine that declares
// none takes the inputs its templates read, and refuses others, which
// nothing would see.
func (r *Routine) CheckInput(input map[string]string) error {
	if len(r.Inputs) == 0 {
		for _, k := range slices.Sorted(maps.Keys(input)) {
			if !slices.Contains(r.InputsRead, k) {
				return fmt.Errorf("%s declares no inputs and reads no input.%s: it would be ignored; declare it under inputs: (docs/routine.md), or leave it out", r.Name, k)
			}
		}
		return nil
	}
	for _, k := range slices.Sorted(maps.Keys(input)) {
		if _, ok := r.Inputs[k]; !ok {
			return fmt.Errorf("%s declares no input %q (inputs: %s)", r.Name, k, strings.Join(r.InputNames(), ", "))
		}
	}
	for _, k := range r.InputNames() {
		if _, ok := input[k]; !ok && r.Inputs[k].Required {
			return fmt.Errorf("input %q is required by %s", k, r.Name)
		}
	}
	return nil
}

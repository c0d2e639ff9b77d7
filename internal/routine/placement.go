package routine

import (
	"regexp"
	"slices"
	"strings"
)

// Placement says where runs execute in remote mode. Of a routine (its
// region: and labels:) it is what a worker must have to run it; of a
// worker (routines worker --region, --labels) what it has. A local daemon
// ignores it: it is the only worker there is.
type Placement struct {
	Region string   `json:"region,omitempty"`
	Labels []string `json:"labels,omitempty"`
}

// labelPattern is what a region and a label look like, as a routine's
// name: lower-case letters, digits and dashes, starting and ending with a
// letter or digit.
var labelPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// ValidLabel reports whether s may be a region or a label.
func ValidLabel(s string) bool { return labelPattern.MatchString(s) }

// LabelRule says what ValidLabel wants, for the messages that refuse a
// region or a label.
const LabelRule = "lower-case letters, digits and dashes, starting and ending with a letter or digit"

// NewPlacement returns the placement of region and labels, its labels
// sorted and each once, so that two placements with the same labels are
// equal.
func NewPlacement(region string, labels []string) Placement {
	p := Placement{Region: region}
	if len(labels) > 0 {
		p.Labels = slices.Compact(slices.Sorted(slices.Values(labels)))
	}
	return p
}

// Placement returns what a worker must have to run the routine.
func (r *Routine) Placement() Placement { return NewPlacement(r.Region, r.Labels) }

// IsZero reports whether p asks for nothing: any worker meets it.
func (p Placement) IsZero() bool { return p.Region == "" && len(p.Labels) == 0 }

// MetBy reports whether a worker of placement w may run what requires p:
// p names no region or w's, and each of p's labels is one of w's.
func (p Placement) MetBy(w Placement) bool {
	if p.Region != "" && p.Region != w.Region {
		return false
	}
	for _, l := range p.Labels {
		if !slices.Contains(w.Labels, l) {
			return false
		}
	}
	return true
}

// String describes p as people read it: "region eu-west, labels gpu,
// ssd"; "anywhere" when it asks for nothing.
func (p Placement) String() string {
	var parts []string
	if p.Region != "" {
		parts = append(parts, "region "+p.Region)
	}
	switch len(p.Labels) {
	case 0:
	case 1:
		parts = append(parts, "label "+p.Labels[0])
	default:
		parts = append(parts, "labels "+strings.Join(p.Labels, ", "))
	}
	if len(parts) == 0 {
		return "anywhere"
	}
	return strings.Join(parts, ", ")
}

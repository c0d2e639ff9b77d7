package routine

// RoutineAction calls another routine of the project: a sub-run with its
// own record, executed in the calling run's place and waited for. The
// step's outputs are the sub-run's: the outputs of its main steps (a later
// step's key overrides an earlier one's), with run_id and state.
type RoutineAction struct {
	Name  string            `yaml:"name" json:"name" template:"-" jsonschema:"required,description=The routine to call: the name of another routine of the project (not a template)."`
	Input map[string]string `yaml:"input,omitempty" json:"input,omitempty" jsonschema:"description=Its input: a mapping of names to strings (templates)\\, checked against the routine's declared inputs."`
}

// TriggerRoutine is the trigger kind of a sub-run, whose payload names the
// run and step that called it (SubrunPayload).
const TriggerRoutine = "routine"

// SubrunPayload is the trigger payload of a sub-run: its link to the
// calling run's trace.
type SubrunPayload struct {
	ParentRunID   string `json:"parent_run_id"`
	ParentRoutine string `json:"parent_routine"`
	ParentStep    string `json:"parent_step"`
}

// MaxCallDepth bounds how deep routine steps may nest at run time, beside
// the validation that rejects cycles among the project's routines.
const MaxCallDepth = 8

// Package template owns the expression language of routine files: the
// {{ … }} segments of rendered strings and the bare expressions of if:,
// compiled once with expr-lang and evaluated against a Context per step.
//
// A template is literal text with {{ expr }} segments. {{NAME}} with an
// upper-case identifier is a named value: a declared secret, else an env
// entry. Expressions may only start from the roots listed in Roots, so a
// typo is an error when the routine is loaded, not when it runs.
//
// Step outputs may be structured (routine.Outputs): expressions navigate
// them (steps.t.outputs.json.id), and a structure rendered into text is its
// compact JSON, which then lands as any other value does (ShellLine, URL).
package template

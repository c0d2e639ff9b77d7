// Package spec owns turning a routine.yaml into a valid routine.Routine:
// it decodes the YAML with positions, reports every problem of the file at
// once (unknown keys with a suggestion, wrong types, invalid values,
// references that cannot resolve), applies the defaults and describes the
// format as a JSON Schema. It touches no database and runs nothing.
package spec

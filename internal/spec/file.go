package spec

import (
	"fmt"
	"reflect"
)

// DecodeFile decodes a YAML file other than a routine's (the project's
// routines.project.yaml) into v, a pointer to a struct whose yaml tags
// name its keys, as a routine file is decoded: every problem at once as an
// *Error, each at file:line:col with its line, an unknown key with the
// closest valid one, a wrong type with what to write, a value whose
// UnmarshalText fails with its error. An empty file leaves v as it is.
// noun names the file in messages ("a project file"), and mapping what
// its top level holds ("retention: and more").
func DecodeFile(file string, data []byte, v any, noun, mapping string) error {
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		panic(fmt.Sprintf("spec.DecodeFile: %T is not a pointer to a struct", v))
	}
	src := &source{file: file, data: data, format: &format{root: t.Elem(), noun: noun, mapping: mapping}}
	decode(src, v)
	return src.err()
}

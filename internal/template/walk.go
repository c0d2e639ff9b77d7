package template

import (
	"fmt"
	"reflect"
	"strings"
)

// MapStrings returns a deep copy of v in which fn has replaced every string
// a routine file may template: each string, or element or value of a list
// or mapping of strings, reached through exported fields, pointers and
// interfaces (YAML decoded into an any). A struct field tagged
// `template:"-"` is copied as it is, and so are mapping keys and values of
// other kinds (numbers, durations). fn gets the string's path in the file
// from v, built from the fields' YAML names: "state.get",
// "sql.params[0]", "emit.data.host". The first error of fn stops the walk.
//
// Step kinds use it twice: the engine renders an action with it, and the
// validator checks the same strings, so a kind's templated fields are
// declared once, by its struct.
func MapStrings[T any](v T, fn func(path, s string) (string, error)) (T, error) {
	out, err := mapValue("", reflect.ValueOf(&v).Elem(), fn)
	if err != nil {
		return v, err
	}
	return out.Interface().(T), nil
}

func mapValue(path string, v reflect.Value, fn func(path, s string) (string, error)) (reflect.Value, error) {
	switch v.Kind() {
	case reflect.String:
		s, err := fn(path, v.String())
		if err != nil {
			return v, err
		}
		out := reflect.New(v.Type()).Elem()
		out.SetString(s)
		return out, nil
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return v, nil
		}
		elem, err := mapValue(path, v.Elem(), fn)
		if err != nil {
			return v, err
		}
		if v.Kind() == reflect.Interface {
			out := reflect.New(v.Type()).Elem()
			out.Set(elem)
			return out, nil
		}
		p := reflect.New(elem.Type())
		p.Elem().Set(elem)
		return p, nil
	case reflect.Struct:
		return mapStruct(path, v, fn)
	case reflect.Slice:
		if v.IsNil() {
			return v, nil
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			e, err := mapValue(fmt.Sprintf("%s[%d]", path, i), v.Index(i), fn)
			if err != nil {
				return v, err
			}
			out.Index(i).Set(e)
		}
		return out, nil
	case reflect.Map:
		if v.IsNil() || v.Type().Key().Kind() != reflect.String {
			return v, nil
		}
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		iter := v.MapRange()
		for iter.Next() {
			e, err := mapValue(join(path, iter.Key().String()), iter.Value(), fn)
			if err != nil {
				return v, err
			}
			out.SetMapIndex(iter.Key(), e)
		}
		return out, nil
	}
	return v, nil
}

func mapStruct(path string, v reflect.Value, fn func(path, s string) (string, error)) (reflect.Value, error) {
	t := v.Type()
	out := reflect.New(t).Elem()
	out.Set(v)
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() || f.Tag.Get("template") == "-" {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		p := path
		if !strings.Contains(opts, "inline") {
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			p = join(path, name)
		}
		e, err := mapValue(p, v.Field(i), fn)
		if err != nil {
			return v, err
		}
		out.Field(i).Set(e)
	}
	return out, nil
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

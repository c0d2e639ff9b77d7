package spec

import (
	"reflect"
	"strings"
	"sync"
)

// field is one key a struct accepts in the file.
type field struct {
	key   string
	index []int // reflect field index, through ,inline embedded structs
	typ   reflect.Type
}

// structInfo is the keys a struct accepts, from its yaml tags.
type structInfo struct {
	fields []field // in declaration order
	byKey  map[string]*field
	keys   []string
}

var structInfos sync.Map // reflect.Type → *structInfo

// fieldsOf returns the keys struct type t accepts. Fields tagged "-" and
// unexported fields are not part of the file.
func fieldsOf(t reflect.Type) *structInfo {
	if si, ok := structInfos.Load(t); ok {
		return si.(*structInfo)
	}
	si := &structInfo{byKey: map[string]*field{}}
	collectFields(t, nil, si)
	for i := range si.fields {
		f := &si.fields[i]
		si.byKey[f.key] = f
		si.keys = append(si.keys, f.key)
	}
	structInfos.Store(t, si)
	return si
}

func collectFields(t reflect.Type, index []int, si *structInfo) {
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		key, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if key == "-" {
			continue
		}
		idx := append(append([]int(nil), index...), f.Index...)
		if f.Anonymous && strings.Contains(opts, "inline") {
			collectFields(f.Type, idx, si)
			continue
		}
		if key == "" {
			key = strings.ToLower(f.Name)
		}
		si.fields = append(si.fields, field{key: key, index: idx, typ: f.Type})
	}
}

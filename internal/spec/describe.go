package spec

import (
	"reflect"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// listNouns name what the lists of some keys hold.
var listNouns = map[string]string{
	"needs":      "a list of step ids",
	"artifacts":  "a list of paths",
	"read":       "a list of paths",
	"write":      "a list of paths",
	"on":         "a list of file events",
	"tags":       "a list of labels",
	"events":     "a list of event names",
	"secrets":    "a list of secret names",
	"steps":      "a list of steps",
	"on_failure": "a list of steps",
	"triggers":   "a list of triggers",
	"params":     "a list of values",
	"fail_on":    "a list of statuses such as \">=400\" or \"404\"",
}

// describe says in words what a value of type t under key looks like.
func describe(t reflect.Type, key string) string {
	switch t {
	case durationType:
		return "a duration such as 30s or 10m"
	case byteSizeType:
		return "a size such as 512MiB"
	case secretRefType:
		return "a secret NAME or a mapping with name: and from:"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return describe(t.Elem(), key)
	case reflect.Slice:
		if s, ok := listNouns[key]; ok {
			return s
		}
		return "a list"
	case reflect.Map:
		return "a mapping of names to values"
	case reflect.Struct:
		return "a mapping"
	case reflect.Int:
		return "a whole number"
	case reflect.Bool:
		return "true or false"
	}
	return "a string"
}

// nodeKind says in words what a node holds.
func nodeKind(n ast.Node) string {
	switch n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.IntegerNode, *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number"
	case *ast.BoolNode:
		return "true/false"
	case *ast.NullNode:
		return "nothing"
	}
	return "a string"
}

// nodePos returns the 1-based line and column where n starts.
func nodePos(n ast.Node) (int, int) {
	switch x := n.(type) {
	case *ast.MappingNode:
		if !x.IsFlowStyle && len(x.Values) > 0 {
			return nodePos(x.Values[0])
		}
	case *ast.MappingValueNode:
		if x.Key != nil {
			return nodePos(x.Key)
		}
	}
	if n == nil {
		return 1, 1
	}
	return tokenPos(n.GetToken())
}

// tokenPos returns the 1-based line and column of a token.
func tokenPos(tk *token.Token) (int, int) {
	if tk == nil || tk.Position == nil {
		return 1, 1
	}
	return max(tk.Position.Line, 1), max(tk.Position.Column, 1)
}

// human turns a document path into the form messages use: steps[1].needs.
func human(path string) string {
	if path == "$" {
		return "the routine"
	}
	return strings.TrimPrefix(path, "$.")
}

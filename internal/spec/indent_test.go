package spec

import (
	"testing"

	"github.com/goccy/go-yaml/parser"
)

// Valid layouts must not read as misindented: a false finding would hide
// the parser's own message, or warn about a good file.
func TestIndentationValidLayouts(t *testing.T) {
	t.Parallel()
	for name, yaml := range map[string]string{
		"list at its key's column": "name: a\nsteps:\n- id: a\n  run: x\ntriggers:\n- every: 1h\n",
		"indented top level":       "  name: a\n  steps:\n    - id: a\n      run: x\n",
		"block scalars":            "name: a\nsteps:\n  - id: a\n    run: |2\n        echo a\n      echo b\n    env:\n      A: >-\n        folded\n\n        text\n  - id: b\n    run: x\n",
		"flow over lines":          "name: a\nsteps:\n  - id: a\n    needs: [\n  x,\n    y]\n    http: {url: 'https://e.com',\n  method: GET}\n    timeout: 1s\n",
		"comments anywhere":        "# head\nname: a # trailing\n    # deep comment\nsteps:   # here\n# shallow\n  - id: a\n    run: x\n",
		"anchors and merges":       "name: a\nx-base: &base\n  timeout: 1s\nsteps:\n  - <<: *base\n    id: a\n    run: x\n",
		"plain value over lines":   "name: a\ndescription: a long\n  description over\n  three lines\nsteps:\n  - id: a\n    run: x\n",
		"value on the next line":   "name: a\nsteps:\n  - id: a\n    run:\n      echo x\n    timeout: 1s\n",
		"lone dashes":              "name: a\nsteps:\n  -\n    id: a\n    run: x\n  - \n    id: b\n    run: y\n",
		"nested lists":             "name: a\ntags:\n  - - a\n    - b\n  - - c\nsteps:\n  - id: a\n    run: x\n",
		"quoted keys and values":   "\"name\": a\n'steps':\n  - id: a\n    run: 'it''s: fine'\n    env: {\"A\": \"b: c\"}\n",
		"document start":           "---\nname: a\nsteps:\n  - id: a\n    run: x\n",
		"secrets as mappings":      "name: a\nsecrets:\n  - name: A\n    from: env:B\n  - C\nsteps:\n  - id: a\n    run: x\n",
		"empty values":             "name: a\nenv:\ndescription:\nsteps:\n  - id: a\n    run: x\n",
	} {
		if _, err := parser.ParseBytes([]byte(yaml), 0); err != nil {
			t.Fatalf("%s: not valid YAML: %v", name, err)
		}
		if f, ok := indentation(&source{data: []byte(yaml)}); ok {
			t.Errorf("%s: read as misindented: %+v", name, f)
		}
	}
}

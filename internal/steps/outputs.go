package steps

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/routines-dev/routines/internal/routine"
)

// ParseOutputs reads a step's $ROUTINES_OUTPUT file in the GitHub Actions
// format: one `key=value` per line, or a multi-line value as
//
//	key<<DELIM
//	line 1
//	line 2
//	DELIM
//
// Every value is text: a step that hands on structured data writes JSON
// into an output, which later steps read with fromJSON.
func ParseOutputs(data string) (routine.Outputs, error) {
	out := routine.Outputs{}
	lines := strings.Split(strings.ReplaceAll(data, "\r\n", "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if strings.TrimSpace(line) == "" {
			continue
		}
		eq := strings.IndexByte(line, '=')
		heredoc := strings.Index(line, "<<")
		if heredoc > 0 && (eq < 0 || heredoc < eq) {
			key, delim := line[:heredoc], strings.TrimSpace(line[heredoc+2:])
			if err := checkOutputKey(key, i+1); err != nil {
				return nil, err
			}
			if delim == "" {
				return nil, fmt.Errorf("outputs line %d: empty delimiter after %q", i+1, key+"<<")
			}
			var body []string
			closed := false
			for i++; i < len(lines); i++ {
				if lines[i] == delim {
					closed = true
					break
				}
				body = append(body, lines[i])
			}
			if !closed {
				return nil, fmt.Errorf("outputs: value of %q is not closed by a line %q", key, delim)
			}
			out[key] = strings.Join(body, "\n")
			continue
		}
		if eq <= 0 {
			return nil, fmt.Errorf("outputs line %d: expected key=value or key<<DELIMITER, got %q", i+1, truncate(line, 80))
		}
		key := line[:eq]
		if err := checkOutputKey(key, i+1); err != nil {
			return nil, err
		}
		out[key] = line[eq+1:]
	}
	return out, nil
}

// structured returns v as a structured output holds it: the value
// routine.DecodeJSON gives for the JSON of v.
func structured(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return routine.DecodeJSON(b)
}

// textList returns a list of text as a structured output holds it.
func textList(list []string) []any {
	out := make([]any, len(list))
	for i, s := range list {
		out[i] = s
	}
	return out
}

func checkOutputKey(key string, line int) error {
	for i, c := range key {
		ok := c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9'
		if !ok {
			return fmt.Errorf("outputs line %d: invalid key %q: use letters, digits, - and _", line, key)
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

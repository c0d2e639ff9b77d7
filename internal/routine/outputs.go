package routine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Outputs are what a step leaves for the steps after it, by name. Most
// values are text (a string). A structured output (an http answer's json,
// sql rows, an llm's usage, …) holds decoded JSON — map[string]any, []any,
// string, int, float64, json.Number, bool or nil, as DecodeJSON gives them
// — so expressions navigate it (steps.q.outputs.rows[0].email). Which
// outputs are structured is up to each step kind (StepOutputs).
//
// A value reads back from its JSON as the same Go value, so a run resumed
// from its checkpoint sees what its steps produced.
//
// The type has no methods on its value: expressions fetch the methods of a
// map before its keys, so a method would hide an output of the same name.
type Outputs map[string]any

// UnmarshalJSON decodes stored outputs as DecodeJSON decodes values.
// Outputs stored before outputs had structure (every value a string) load
// as they were.
func (o *Outputs) UnmarshalJSON(data []byte) error {
	v, err := DecodeJSON(data)
	if err != nil {
		return err
	}
	switch m := v.(type) {
	case nil:
		*o = nil
	case map[string]any:
		*o = m
	default:
		return fmt.Errorf("outputs: want a JSON object, got %s", bytes.TrimSpace(data[:min(len(data), 40)]))
	}
	return nil
}

// DecodeJSON decodes one JSON value into the Go values of Outputs: a whole
// number an int holds (12, 1.0, 1e3) as an int, an integer too big for
// one as the json.Number it is written as, every other number as a
// float64. Trailing data after the value is an error.
func DecodeJSON(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("invalid JSON: the text is empty")
		}
		return nil, err
	}
	if rest := bytes.Trim(data[d.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return nil, fmt.Errorf("invalid JSON: more after the value at offset %d", d.InputOffset())
	}
	return numbers(v)
}

// numbers replaces the json.Numbers of v, in place.
func numbers(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		return number(string(x))
	case map[string]any:
		for k, e := range x {
			n, err := numbers(e)
			if err != nil {
				return nil, err
			}
			x[k] = n
		}
	case []any:
		for i, e := range x {
			n, err := numbers(e)
			if err != nil {
				return nil, err
			}
			x[i] = n
		}
	}
	return v, nil
}

func number(s string) (any, error) {
	if !strings.ContainsAny(s, ".eE") {
		n, err := strconv.ParseInt(s, 10, strconv.IntSize)
		if err == nil {
			return int(n), nil
		}
		// Too big for an int: kept as written, so an id keeps its digits
		// when it is written out again.
		return json.Number(s), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, fmt.Errorf("invalid JSON number %s: %w", s, err)
	}
	// 2^63 (or 2^31) is the first whole float an int does not hold.
	if f == math.Trunc(f) && f >= math.MinInt && f < -math.MinInt {
		return int(f), nil
	}
	return f, nil
}

// JSONText writes v as compact JSON, without escaping <, > and & (the
// text goes to programs, not into HTML), map keys sorted.
func JSONText(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return string(bytes.TrimSuffix(b.Bytes(), []byte("\n"))), nil
}

// OutputText returns an output value as text, as a template renders it: a
// string as it is, nil as nothing, anything else as compact JSON.
func OutputText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	}
	s, err := JSONText(v)
	if err != nil {
		return fmt.Sprint(v) // not from JSON (a float NaN): still show it
	}
	return s
}

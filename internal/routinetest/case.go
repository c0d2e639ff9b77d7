// Package routinetest runs the tests of routines (`routines test`): each
// test gives a routine an input or a trigger event, canned results for the
// steps that reach outside, and expectations about what the run did. Runs
// execute in the real engine, with real run/state/sql steps in a copy of
// the routine directory, on a virtual clock: backoffs do not sleep.
package routinetest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"

	"github.com/routines-dev/routines/internal/routine"
)

// Case is one test of a routine, as a tests/*.yaml file writes it.
type Case struct {
	Name string `yaml:"name"`
	// Input is the run's input; Event the trigger payload (any YAML,
	// seen as event in templates).
	Input map[string]string `yaml:"input,omitempty"`
	Event any               `yaml:"event,omitempty"`
	// Secrets gives values to the routine's declared secrets; a declared
	// secret not given gets "test-<NAME>".
	Secrets map[string]string `yaml:"secrets,omitempty"`
	// Mocks replace steps, by step id (compensate:<id> for a
	// compensation): canned outputs or failures, one per attempt.
	Mocks  map[string]Mock `yaml:"mocks,omitempty"`
	Expect Expect          `yaml:"expect"`

	// File and Index say where the test was written; root is its YAML
	// path in the file ("$", "$[2]" in a list, "$.tests[1]" in
	// routine.yaml).
	File  string `yaml:"-"`
	Index int    `yaml:"-"`
	root  string
}

// Mock is what a mocked step returns: Tries, one per attempt (the last
// one repeats), or a single result.
type Mock struct {
	Tries []Try
}

// Try is the result of one attempt of a mocked step. Outputs are YAML
// values: text, or the structure of an output the kind gives structured
// (json: {id: T-7}), which may also be written as JSON text
// (json: '{"id":"T-7"}').
type Try struct {
	Outputs map[string]any `yaml:"outputs,omitempty"`
	Fail    *Failure       `yaml:"fail,omitempty"`
}

// Failure is a canned failure of a mocked step.
type Failure struct {
	Message   string `yaml:"message"`
	Code      string `yaml:"code,omitempty"`      // a payload code such as http_status; step_failed when empty
	Retryable *bool  `yaml:"retryable,omitempty"` // default true
}

// UnmarshalYAML reads a mock written as one try (a mapping) or as a list
// of tries.
func (m *Mock) UnmarshalYAML(data []byte) error {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return err
	}
	if _, isList := v.([]any); isList {
		return yaml.UnmarshalWithOptions(data, &m.Tries, yaml.Strict())
	}
	var t Try
	if err := yaml.UnmarshalWithOptions(data, &t, yaml.Strict()); err != nil {
		return err
	}
	m.Tries = []Try{t}
	return nil
}

// Expect is what a test checks of its run. Zero values check nothing.
type Expect struct {
	State string `yaml:"state,omitempty"`
	// Steps by id (compensate:<id> for a compensation): the final state,
	// or {state, attempts}.
	Steps map[string]StepExpect `yaml:"steps,omitempty"`
	// Outputs by "<step>.<key>".
	Outputs map[string]Matcher `yaml:"outputs,omitempty"`
	// Calls by step id: for each call of the step (each attempt), the
	// rendered fields it was called with, by path ("json.subject",
	// "to[0]"), so a test sees what the templates made.
	Calls map[string][]map[string]Matcher `yaml:"calls,omitempty"`
	// Error is the run's error payload.
	Error *ErrorExpect `yaml:"error,omitempty"`
	// Order lists the steps that ran, in the order they started (each
	// once; compensate:<id> for compensations).
	Order []string `yaml:"order,omitempty"`
}

// StepExpect is what a test checks of one step.
type StepExpect struct {
	State    string `yaml:"state,omitempty"`
	Attempts int    `yaml:"attempts,omitempty"`
}

// UnmarshalYAML reads a step expectation written as its state alone.
func (s *StepExpect) UnmarshalYAML(data []byte) error {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return err
	}
	if state, ok := v.(string); ok {
		s.State = state
		return nil
	}
	type plain StepExpect
	return yaml.UnmarshalWithOptions(data, (*plain)(s), yaml.Strict())
}

// ErrorExpect is what a test checks of the run's error payload.
type ErrorExpect struct {
	Code    string  `yaml:"code,omitempty"`
	Step    string  `yaml:"step,omitempty"`
	Message Matcher `yaml:"message,omitempty"`
}

// Load reads the tests of routine r: those of its tests: list, then every
// tests/*.yaml (or .yml) file next to it, each holding one test or a list
// of them, in file order.
func Load(r *routine.Routine) ([]*Case, error) {
	cases, err := inline(r)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	var files []string
	for _, pattern := range []string{"*.yaml", "*.yml"} {
		m, err := filepath.Glob(filepath.Join(r.Dir, "tests", pattern))
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	for _, f := range files {
		cs, err := loadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cases = append(cases, cs...)
	}
	return cases, errors.Join(errs...)
}

// inline decodes the tests: list of routine.yaml, which the routine holds
// as plain YAML values.
func inline(r *routine.Routine) ([]*Case, error) {
	var cases []*Case
	var errs []error
	for i, t := range r.Tests {
		data, err := yaml.Marshal(t)
		if err == nil {
			c := &Case{}
			if err = yaml.UnmarshalWithOptions(data, c, yaml.Strict()); err == nil {
				c.File, c.Index, c.root = r.File, i, fmt.Sprintf("$.tests[%d]", i)
				if c.Name == "" {
					c.Name = fmt.Sprintf("tests[%d]", i)
				}
				cases = append(cases, c)
				continue
			}
		}
		errs = append(errs, fmt.Errorf("%s: tests[%d]: %s", r.File, i, strings.Join(strings.Fields(yaml.FormatError(err, false, false)), " ")))
	}
	return cases, errors.Join(errs...)
}

func loadFile(path string) ([]*Case, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cases []*Case
	if trimmed := bytes.TrimSpace(stripComments(data)); bytes.HasPrefix(trimmed, []byte("-")) {
		err = yaml.UnmarshalWithOptions(data, &cases, yaml.Strict())
	} else {
		var c Case
		err = yaml.UnmarshalWithOptions(data, &c, yaml.Strict())
		cases = []*Case{&c}
	}
	if err != nil {
		return nil, fmt.Errorf("%s:%s", path, strings.Replace(strings.TrimPrefix(yaml.FormatError(err, false, true), "["), "] ", ": ", 1))
	}
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	list := bytes.HasPrefix(bytes.TrimSpace(stripComments(data)), []byte("-"))
	for i, c := range cases {
		c.File, c.Index, c.root = path, i, "$"
		if list {
			c.root = fmt.Sprintf("$[%d]", i)
		}
		if c.Name == "" {
			c.Name = base
			if len(cases) > 1 {
				c.Name = fmt.Sprintf("%s#%d", base, i+1)
			}
		}
	}
	return cases, nil
}

// stripComments drops the comment lines of a YAML document, to see what
// it starts with.
func stripComments(data []byte) []byte {
	var out [][]byte
	for _, line := range bytes.Split(data, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

package spec

import (
	"errors"
	"testing"

	"github.com/routines-dev/routines/internal/suggest"
)

func TestProblemString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    Problem
		want string
	}{
		{
			"caret under the column",
			Problem{File: "routine.yaml", Line: 7, Col: 3, Message: `unknown key "stpes"; did you mean "steps"?`, Snippet: "  stpes:"},
			"routine.yaml:7:3: unknown key \"stpes\"; did you mean \"steps\"?\n    7 |   stpes:\n      |   ^",
		},
		{
			"tabs kept",
			Problem{File: "r.yaml", Line: 12, Col: 3, Message: "m", Snippet: "\t\tx"},
			"r.yaml:12:3: m\n    12 | \t\tx\n       | \t\t^",
		},
		{
			"no snippet",
			Problem{File: "r.yaml", Line: 1, Col: 1, Message: "the file is empty"},
			"r.yaml:1:1: the file is empty",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.p.String(); got != tt.want {
				t.Errorf("String() =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestErrorListsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := Parse("x/routine.yaml", []byte("name: A\nsteps: []\nbogus: 1\n"), "")
	problems := Problems(err)
	if len(problems) != 3 {
		t.Fatalf("Problems = %+v, want 3", problems)
	}
	want := "x/routine.yaml:1:7: name \"A\" must be lower-case letters, digits and dashes, starting and ending with a letter or digit\n" +
		"    1 | name: A\n" +
		"      |       ^\n" +
		"x/routine.yaml:2:8: a routine needs at least one step under steps:\n" +
		"    2 | steps: []\n" +
		"      |        ^\n" +
		"x/routine.yaml:3:1: unknown key \"bogus\" (valid here: name, description, tags, region, labels, timeout, parallelism, concurrency, inputs, env, secrets, permissions, limits, resources, triggers, steps, on_failure, dead_letter, value, alerts, tests)\n" +
		"    3 | bogus: 1\n" +
		"      | ^"
	if err.Error() != want {
		t.Errorf("Error() =\n%s\nwant\n%s", err, want)
	}
	if problems[0].Path != "$.name" || problems[1].Path != "$.steps" {
		t.Errorf("paths = %q, %q", problems[0].Path, problems[1].Path)
	}
	if Problems(errors.New("other")) != nil {
		t.Error("Problems of a plain error is not nil")
	}
}

func TestDidYouMean(t *testing.T) {
	t.Parallel()
	keys := []string{"id", "name", "if", "needs", "retry", "timeout", "steps", "run", "workdir"}
	tests := map[string]string{
		"stpes":         "steps",
		"nedds":         "needs",
		"timout":        "timeout",
		"time":          "timeout",
		"timeouts":      "timeout",
		"Needs":         "needs",
		"retries":       "retry",
		"workdirectory": "workdir",
		"x":             "",
		"colour":        "",
	}
	for in, want := range tests {
		if got := suggest.Closest(in, keys); got != want {
			t.Errorf("suggest.Closest(%q) = %q, want %q", in, got, want)
		}
	}
}

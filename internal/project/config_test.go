package project

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/retention"
)

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	day := 24 * time.Hour
	for _, tc := range []struct {
		name, file string // file "": none
		want       retention.Policy
		problems   []string // each a line of the error, after the file name
	}{
		{name: "no file", want: retention.Default()},
		{name: "empty file", file: "# nothing yet\n", want: retention.Default()},
		{name: "some keys", file: "retention:\n  runs: {max_age: 14d, max_count: 100_000}\n  audit:\n    max_age: forever\n",
			want: retention.Policy{
				Runs:      retention.RunsPolicy{MaxAge: retention.Age(14 * day), MaxCount: 100000},
				Logs:      retention.AgePolicy{MaxAge: retention.Age(7 * day)},
				Artifacts: retention.AgePolicy{MaxAge: retention.Age(30 * day)},
			}},
		{name: "problems", file: "retention:\n  runs: {max_age: 30s, max_cont: 5}\n  logs: {max_age: 7 days}\n  artefacts: {max_age: 1d}\n",
			problems: []string{
				`:2:19: retention.runs.max_age: 30s is too short: write 1m or more, such as 7d, or forever`,
				`:2:24: unknown key "max_cont"; did you mean "max_age"?`,
				`:3:19: retention.logs.max_age: invalid duration "7 days": write a number and a unit, such as 500ms, 30s, 10m, 1h30m, 2d or 1d12h, or forever`,
				`:4:3: unknown key "artefacts"; did you mean "artifacts"?`,
			}},
		{name: "not a mapping", file: "- retention\n",
			problems: []string{`:1:1: a project file is a mapping with retention:, got a list`}},
		{name: "negative count", file: "retention:\n  runs:\n    max_count: -1\n",
			problems: []string{`:3:16: retention.runs.max_count: "-1" is not a number of runs: write a whole number, 1 or more, such as 100000`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := Project{Dir: t.TempDir()}
			if tc.file != "" {
				if err := os.WriteFile(p.ConfigPath(), []byte(tc.file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			c, err := p.LoadConfig()
			if tc.problems != nil {
				if err == nil {
					t.Fatalf("LoadConfig = %+v, want problems", c)
				}
				var got []string
				for _, line := range strings.Split(err.Error(), "\n") {
					if rest, ok := strings.CutPrefix(line, filepath.Join(p.Dir, ConfigFileName)); ok {
						got = append(got, rest)
					}
				}
				if strings.Join(got, "\n") != strings.Join(tc.problems, "\n") {
					t.Errorf("problems:\n%s\nwant:\n%s\n(whole error:\n%v)", strings.Join(got, "\n"), strings.Join(tc.problems, "\n"), err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Retention != tc.want {
				t.Errorf("policy %+v, want %+v", c.Retention, tc.want)
			}
		})
	}
}

package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/api"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -run %s -update rewrites it):\ngot:\n%s\nwant:\n%s", name, t.Name(), got, want)
	}
}

func TestStatsTableGolden(t *testing.T) {
	t.Parallel()
	s := &api.Stats{
		Overall: api.RoutineStats{Summary: api.Summary{Invocations: 1250, SuccessRate: 0.9712, ErrorRate: 0.0288, LatencyAvgSeconds: 1.4,
			LatencyP95Seconds: 12.5, CPUSeconds: 812.25, GBSeconds: 40.125, BytesSent: 3 << 20, BytesReceived: 512 << 10}},
		Routines: []api.RoutineStats{
			{Routine: "nightly-export", Summary: api.Summary{Invocations: 50, SuccessRate: 0.5, ErrorRate: 0.48, LatencyAvgSeconds: 95,
				LatencyP95Seconds: 240, CPUSeconds: 800, GBSeconds: 40, BytesSent: 3 << 20}},
			{Routine: "support-triage", Summary: api.Summary{Invocations: 1200, SuccessRate: 0.99, ErrorRate: 0.01, LatencyAvgSeconds: 0.0425,
				LatencyP95Seconds: 0.35, CPUSeconds: 12.25, GBSeconds: 0.125, BytesReceived: 512 << 10}},
			{Routine: "idle", Summary: api.Summary{}},
		},
	}
	var out bytes.Buffer
	if err := printStats(&out, s); err != nil {
		t.Fatal(err)
	}
	golden(t, "stats.txt", out.Bytes())
}

func TestReportTableGolden(t *testing.T) {
	t.Parallel()
	since := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	mttr := 754.0
	row := func(name string, runs, ok, failed, dead int64, hours float64, dir string) api.ReportRow {
		return api.ReportRow{Name: name, Runs: runs, Succeeded: ok, Failed: failed, Dead: dead, ErrorRate: float64(failed+dead) / float64(runs),
			HoursSaved: hours, ErrorTrend: api.Trend{Direction: dir}}
	}
	a := row("support-triage", 1200, 1188, 12, 0, 99, "better")
	a.Incidents, a.Recovered, a.MTTRSeconds = 4, 4, &mttr
	b := row("nightly-export", 50, 25, 20, 4, 0, "worse")
	b.Incidents, b.OpenIncidents = 3, 1
	rep := &api.Report{Since: since, Until: since.Add(90 * 24 * time.Hour), Routines: []api.ReportRow{b, a},
		Tags: []api.ReportRow{row("prod", 1250, 1213, 32, 4, 99, "steady")}, Total: row("", 1250, 1213, 32, 4, 99, "steady")}
	rep.Tags[0].Incidents, rep.Tags[0].OpenIncidents = 7, 1
	var out bytes.Buffer
	if err := printReport(&out, rep); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.txt", out.Bytes())
}

package dashboard_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/server"
	"github.com/routines-dev/routines/internal/store/sqlite"
	"github.com/routines-dev/routines/internal/store/storetest"
)

// BenchmarkMillionPages times the dashboard's pages over the store of a
// million runs that the store's BenchmarkMillion keeps in
// ROUTINES_BENCH_1M_DB (docs/performance.md): the whole answer, stats,
// lookups and rendering, over HTTP on loopback.
func BenchmarkMillionPages(b *testing.B) {
	path := os.Getenv("ROUTINES_BENCH_1M_DB")
	if _, err := os.Stat(path); path == "" || err != nil {
		b.Skip("set ROUTINES_BENCH_1M_DB to a store the store's BenchmarkMillion loaded")
	}
	st, err := sqlite.Open(b.Context(), path)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var rts []*routine.Routine
	for i := range storetest.MillionRoutines {
		rts = append(rts, &routine.Routine{Name: fmt.Sprintf("r%02d", i), Triggers: []routine.Trigger{{Cron: "*/5 * * * *"}}})
	}
	ts := httptest.NewServer(server.New(server.Config{Store: st, Queue: scheduler.NewQueue(st, nil, nil), Routines: scheduler.NewCatalog(rts)}))
	defer ts.Close()
	for _, page := range []string{"/?range=30d", "/?range=24h", "/ui/runs", "/ui/runs?state=failed&tag=team-a", "/ui/metrics?range=30d", "/ui/costs?range=30d"} {
		b.Run(page, func(b *testing.B) {
			for b.Loop() {
				resp, err := http.Get(ts.URL + page)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("%s: %d", page, resp.StatusCode)
				}
			}
		})
	}
}

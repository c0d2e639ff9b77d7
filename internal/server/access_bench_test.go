package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/server"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// BenchmarkAuthorization measures what the check of a token of the store
// costs a request, in process (no network, which would hide it): "off" is
// a daemon with no token (nothing checked), "on" the same requests with a
// viewer token (its hash looked up, then cached), "check" the check
// alone. The ratio of on to off is the cost:
//
//	go test -run '^$' -bench BenchmarkAuthorization -benchtime 3s ./internal/server
func BenchmarkAuthorization(b *testing.B) {
	ctx := context.Background()
	open := func(b *testing.B, teams bool) (*server.Server, *http.Request, string) {
		st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "state.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		rt := &routine.Routine{Name: "hello"}
		q := scheduler.NewQueue(st, nil, nil)
		run, _, err := q.Enqueue(ctx, &scheduler.Request{Routine: rt, Trigger: routine.TriggerInfo{Kind: "api"}})
		if err != nil {
			b.Fatal(err)
		}
		value := server.NewToken()
		if _, err := st.TokenCreate(ctx, &store.TokenCreateParams{ID: "01TOKEN", Name: "reader", Hash: server.HashToken(value),
			Role: store.RoleViewer, Namespace: store.DefaultNamespace, Now: time.Now()}); err != nil {
			b.Fatal(err)
		}
		srv := server.New(server.Config{Store: st, Queue: q, Routines: scheduler.NewCatalog([]*routine.Routine{rt}), Teams: teams})
		req := httptest.NewRequest(http.MethodGet, "/v1/runs/"+run.ID, nil)
		req.Header.Set("Authorization", "Bearer "+value)
		return srv, req, value
	}
	for _, c := range []struct {
		name  string
		teams bool
	}{{"off", false}, {"on", true}} {
		b.Run(c.name, func(b *testing.B) {
			srv, req, _ := open(b, c.teams)
			for b.Loop() {
				w := httptest.NewRecorder()
				srv.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("GET run = %d %s", w.Code, w.Body)
				}
			}
		})
	}
	b.Run("check", func(b *testing.B) {
		srv, _, value := open(b, true)
		for b.Loop() {
			if _, err := srv.Authenticate(ctx, value); err != nil {
				b.Fatal(err)
			}
		}
	})
}

package server_test

import (
	"context"
	"io"
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
// costs a request, over loopback HTTP as clients call: "off" is a daemon
// with no token (nothing checked), "on" the same requests with a viewer
// token looked up by hash. The ratio of their ns/op is the cost:
//
//	go test -run '^$' -bench BenchmarkAuthorization -benchtime 3s ./internal/server
func BenchmarkAuthorization(b *testing.B) {
	for _, teams := range []bool{false, true} {
		name := "off"
		if teams {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "state.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
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
			ts := httptest.NewServer(server.New(server.Config{Store: st, Queue: q, Routines: scheduler.NewCatalog([]*routine.Routine{rt}), Teams: teams}))
			defer ts.Close()
			req, _ := http.NewRequest(http.MethodGet, ts.URL+"/v1/runs/"+run.ID, nil)
			req.Header.Set("Authorization", "Bearer "+value)
			b.ResetTimer()
			for b.Loop() {
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("GET run = %d %s", resp.StatusCode, body)
				}
			}
		})
	}
}

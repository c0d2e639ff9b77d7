package alert_test

import (
	"testing"

	"github.com/routines-dev/routines/internal/alert"
	"github.com/routines-dev/routines/internal/pgtest"
	"github.com/routines-dev/routines/internal/store/postgres"
)

// TestReplicasNotifyOnce runs the evaluators of three servers, each with
// a store of its own on one PostgreSQL database, at the same time: each
// transition is recorded once and each notification sent once.
func TestReplicasNotifyOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	url := pgtest.StartServer(t).Database(t)
	var evaluators []*alert.Evaluator
	for _, holder := range []string{"server-1", "server-2", "server-3"} {
		st, err := postgres.Open(b.ctx, url, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		evaluators = append(evaluators, b.evaluator(holder, &fakeStats{Store: st, rollups: b.stats.rollups}))
	}
	twice(b, evaluators)
	if len(b.slack.Posts()) != 2 || len(b.webhook.Payloads()) != 2 {
		t.Fatalf("three servers sent %d Slack posts and %d webhook calls, want 2 each (a firing, a clearing)", len(b.slack.Posts()), len(b.webhook.Payloads()))
	}
}

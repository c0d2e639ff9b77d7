package server

import (
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

func TestParseRunQuery(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	q, err := url.ParseQuery("routine=r&state=failed,dead&trigger=cron&tag=prod&since=36h&until=2026-12-04T09:30:00%2B01:00&id=01jeb&before=01JEB2Y5T0Z6Q9K3M8N4R7V2WX&limit=7")
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseRunQuery(q, now)
	if err != nil {
		t.Fatal(err)
	}
	want := &store.RunListParams{Routine: "r", States: []routine.State{routine.StateFailed, routine.StateDead},
		Trigger: "cron", Tag: "prod", Since: now.Add(-36 * time.Hour), Until: time.Date(2026, 12, 4, 8, 30, 0, 0, time.UTC),
		IDPrefix: "01JEB", Before: "01JEB2Y5T0Z6Q9K3M8N4R7V2WX", Limit: 7}
	if !got.Until.Equal(want.Until) {
		t.Errorf("until = %v, want %v", got.Until, want.Until)
	}
	got.Until = want.Until
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseRunQuery =\n%+v\nwant\n%+v", got, want)
	}
}

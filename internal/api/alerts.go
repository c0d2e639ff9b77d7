package api

import (
	"time"

	"github.com/routines-dev/routines/internal/routine"
)

// AlertQuery selects the records of GET /v1/alerts: the query
// parameters routine, since (an RFC 3339 time, or a duration such as 24h
// back from now) and limit. Zero values do not filter.
type AlertQuery struct {
	Routine string
	Since   time.Time
	Limit   int // the server's default (100) when 0
}

// The bounds of AlertQuery.Limit.
const (
	DefaultAlertLimit = 100
	MaxAlertLimit     = 10000
)

// NewAlertRecords prepares records for JSON, as GET /v1/alerts and
// `routines alerts -o json` write them: a list, never null, whose
// records' deliveries are [] when they have none.
func NewAlertRecords(list []*routine.AlertRecord) []*routine.AlertRecord {
	out := make([]*routine.AlertRecord, len(list))
	for i, rec := range list {
		c := *rec
		if c.Deliveries == nil {
			c.Deliveries = []routine.AlertDelivery{}
		}
		out[i] = &c
	}
	return out
}

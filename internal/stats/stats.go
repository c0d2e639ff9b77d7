// Package stats computes what runs amount to, from the store's rollups:
// the figures of GET /v1/stats, `routines stats` and the dashboard
// (invocations, success and error rates, latency, resource use), and the
// value report of GET /v1/report and `routines report` (volume, hours
// saved, error trend, mean time to recovery), with its HTML rendering.
// The server and the CLI call the same functions, so a local project and
// a deployment show the same numbers.
package stats

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"time"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// The bounds of a query.
const (
	// MinStep is the finest series the rollups keep.
	MinStep = time.Minute
	// MaxPoints bounds the points of a series: a chart has no use for
	// more, and they cost the store to read.
	MaxPoints = 10000
)

// ParseQuery reads the query of GET /v1/stats (and /v1/report, which
// takes since and until) relative to now; defaultSince applies when
// since is absent. The error says which parameter is wrong and what to
// write: the server answers it with 400.
func ParseQuery(q url.Values, now time.Time, defaultSince time.Duration) (*store.StatsParams, error) {
	p := &store.StatsParams{Routines: q["routine"], Since: now.Add(-defaultSince), Until: now}
	var err error
	if v := q.Get("since"); v != "" {
		if p.Since, err = instant("since", v, now); err != nil {
			return nil, err
		}
	}
	if v := q.Get("until"); v != "" {
		if p.Until, err = instant("until", v, now); err != nil {
			return nil, err
		}
	}
	if !p.Since.Before(p.Until) {
		return nil, fmt.Errorf("since=%s is not before until=%s: the range must not be empty", q.Get("since"), q.Get("until"))
	}
	if v := q.Get("step"); v != "" {
		var d routine.Duration
		if err := d.UnmarshalText([]byte(v)); err != nil || d.D() < MinStep {
			return nil, fmt.Errorf("step=%s: want a duration of at least 1m, such as 5m, 1h or 1d", v)
		}
		if n := p.Until.Sub(p.Since) / d.D(); n > MaxPoints {
			return nil, fmt.Errorf("step=%s makes %d points over the range: want at most %d, a wider step or a shorter range", v, n, MaxPoints)
		}
		p.Step = d.D()
	}
	for _, r := range p.Routines {
		if r == "" {
			return nil, fmt.Errorf("routine= is empty: name a routine, or leave routine out for all")
		}
	}
	p.Since, p.Until = p.Since.UTC(), p.Until.UTC()
	return p, nil
}

// instant reads a bound of the range: a duration before now, or an RFC
// 3339 time.
func instant(name, v string, now time.Time) (time.Time, error) {
	var d routine.Duration
	if err := d.UnmarshalText([]byte(v)); err == nil {
		return now.Add(-d.D()), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s=%s: want a duration before now, such as 24h or 7d, or an RFC 3339 time such as 2026-01-02T15:04:05Z", name, v)
	}
	return t, nil
}

// Read returns the figures of the runs p selects, per routine and over
// all of them: the histograms of the routines are merged, so the
// overall quantiles are those of all their runs together.
func Read(ctx context.Context, r store.StatsReader, p *store.StatsParams) (*api.Stats, error) {
	list, err := r.Stats(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("read stats: %w", err)
	}
	out := &api.Stats{Since: p.Since, Until: p.Until, StepSeconds: p.Step.Seconds(), Routines: []api.RoutineStats{}}
	var total store.Aggregate
	points := map[time.Time]*store.Aggregate{}
	for _, s := range list {
		if s.Step > 0 {
			out.StepSeconds = s.Step.Seconds()
		}
		total.Merge(&s.Totals)
		for i := range s.Series {
			pt := &s.Series[i]
			if points[pt.Start] == nil {
				points[pt.Start] = &store.Aggregate{Start: pt.Start}
			}
			points[pt.Start].Merge(pt)
		}
		out.Routines = append(out.Routines, api.RoutineStats{Routine: s.Routine, Summary: Summarize(&s.Totals), Series: series(s.Series)})
	}
	overall := make([]store.Aggregate, 0, len(points))
	for _, start := range slices.SortedFunc(maps.Keys(points), time.Time.Compare) {
		overall = append(overall, *points[start])
	}
	out.Overall = api.RoutineStats{Summary: Summarize(&total), Series: series(overall)}
	return out, nil
}

func series(aggs []store.Aggregate) []api.StatsPoint {
	out := make([]api.StatsPoint, len(aggs))
	for i := range aggs {
		out[i] = api.StatsPoint{Start: aggs[i].Start, Summary: Summarize(&aggs[i])}
	}
	return out
}

// Summarize computes the figures of an aggregate.
func Summarize(a *store.Aggregate) api.Summary {
	s := api.Summary{
		ByState:             map[routine.State]int64{},
		LatencyAvgSeconds:   a.Duration.Mean().Seconds(),
		LatencyP50Seconds:   a.Duration.Quantile(0.5).Seconds(),
		LatencyP95Seconds:   a.Duration.Quantile(0.95).Seconds(),
		QueueWaitP95Seconds: a.QueueWait.Quantile(0.95).Seconds(),
		CPUSeconds:          a.CPUSeconds,
		GBSeconds:           a.Usage.GBSeconds,
		PeakMemoryBytes:     a.PeakRSSKB * 1024,
		BytesSent:           a.Usage.BytesSent,
		BytesReceived:       a.Usage.BytesReceived,
		Tokens:              map[string]routine.Tokens{},
	}
	for st, n := range a.ByState {
		s.ByState[st] = n
		s.Invocations += n
	}
	maps.Copy(s.Tokens, a.Usage.Tokens)
	s.SuccessRate = rate(a.ByState[routine.StateSucceeded], s.Invocations)
	s.ErrorRate = rate(Failures(a.ByState), s.Invocations)
	return s
}

// Failures counts the runs that failed: failed or dead. Cancelled runs
// are neither successes nor failures.
func Failures(byState map[routine.State]int64) int64 {
	return byState[routine.StateFailed] + byState[routine.StateDead]
}

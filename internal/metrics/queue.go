package metrics

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// QueueCache is how long the queue's figures read at a scrape serve the
// next scrapes: several Prometheus servers, or a dashboard refreshing,
// cost the store one round of counts per QueueCache at most.
const QueueCache = 5 * time.Second

// Routines lists the routines whose queue a daemon reports;
// *scheduler.Catalog's All is one.
type Routines func() []*routine.Routine

// WatchQueue reports, at scrape time, the queue and concurrency of the
// routines: queued runs by routine and required region, running runs
// against each routine's concurrency ceiling and reservation. They are
// read from st (one count per routine), across every worker of a
// deployment, and kept for QueueCache. Call it once, on a daemon that
// serves the API: every worker reading them would load the store for
// figures the servers already give.
func (m *Metrics) WatchQueue(st store.Store, routines Routines) {
	m.reg.MustRegister(&queueCollector{store: st, routines: routines, ttl: QueueCache})
}

var (
	queueDepthDesc = prometheus.NewDesc(namespace+"_queue_depth",
		"Runs queued, waiting for a worker, by routine and the region they require (\"\" for any); delayed runs included.",
		[]string{"routine", "region"}, nil)
	inUseDesc = prometheus.NewDesc(namespace+"_concurrency_in_use",
		"Runs of the routine running now, across every worker.", []string{"routine"}, nil)
	ceilingDesc = prometheus.NewDesc(namespace+"_concurrency_max",
		"The routine's concurrency.max: the most runs of it running at once (routines with a ceiling only).", []string{"routine"}, nil)
	reservedDesc = prometheus.NewDesc(namespace+"_concurrency_reserved",
		"The routine's concurrency.reserved: worker slots kept free for it (routines with a reservation only).", []string{"routine"}, nil)
)

// queueCollector reads the queue from the store when scraped, at most
// once per ttl.
type queueCollector struct {
	store    store.Store
	routines Routines
	ttl      time.Duration

	mu      sync.Mutex
	at      time.Time
	metrics []prometheus.Metric
	err     error
}

// Describe implements prometheus.Collector.
func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepthDesc
	ch <- inUseDesc
	ch <- ceilingDesc
	ch <- reservedDesc
}

// Collect implements prometheus.Collector.
func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	if time.Since(c.at) >= c.ttl {
		c.metrics, c.err = c.read()
		c.at = time.Now()
	}
	metrics, err := c.metrics, c.err
	c.mu.Unlock()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(queueDepthDesc, err)
		return
	}
	for _, m := range metrics {
		ch <- m
	}
}

// read counts the queued and running runs of every routine.
func (c *queueCollector) read() ([]prometheus.Metric, error) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout/2)
	defer cancel()
	var out []prometheus.Metric
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		out = append(out, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...))
	}
	for _, r := range c.routines() {
		n, err := c.store.RunCount(ctx, &store.RunCountParams{Routine: r.Name, States: []routine.State{routine.StateQueued, routine.StateRunning}})
		if err != nil {
			return nil, fmt.Errorf("count the queued and running runs of %s: %w", r.Name, err)
		}
		gauge(queueDepthDesc, n[routine.StateQueued], r.Name, r.Region)
		gauge(inUseDesc, n[routine.StateRunning], r.Name)
		if r.Concurrency != nil && r.Concurrency.Max > 0 {
			gauge(ceilingDesc, r.Concurrency.Max, r.Name)
		}
		if r.Concurrency != nil && r.Concurrency.Reserved > 0 {
			gauge(reservedDesc, r.Concurrency.Reserved, r.Name)
		}
	}
	return out, nil
}

// WatchSlots reports, at scrape time, the slots of this process's
// executor: how many runs it may execute at once and how many it
// executes, labelled with the region it serves ("" for a local daemon or
// a worker of no region). slots is *scheduler.Scheduler's Slots.
func (m *Metrics) WatchSlots(region string, slots func() (total, busy int)) {
	labels := prometheus.Labels{"region": region}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "worker_slots",
			Help: "Runs this process may execute at once (--workers, --slots).", ConstLabels: labels},
			func() float64 { total, _ := slots(); return float64(total) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "worker_slots_in_use",
			Help: "Runs this process executes now.", ConstLabels: labels},
			func() float64 { _, busy := slots(); return float64(busy) }),
	)
}

package events

import (
	"context"
	"fmt"
	"net/http"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/client"
	"github.com/routines-dev/routines/internal/project"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/tracing"
)

// Remote publishes the events of emit steps over the API of a daemon or
// server (POST /v1/events/<name>), with the emission's token: the one at
// URL (an emit step's server:), else the daemon running for Project —
// run-once's publisher, whose run is not in the daemon's process. That
// daemon is looked up (.routines/serve.json) at each emit, so a run with
// no emit step needs none, and one started while the run goes on is found.
type Remote struct {
	URL     string
	Project project.Project
	// Client sends the requests; http.DefaultClient when nil.
	Client *http.Client
}

// Emit implements stepkind.Publisher.
func (r Remote) Emit(ctx context.Context, e *stepkind.Emission) (*api.EventResult, error) {
	ev, err := emitted(e)
	if err != nil {
		return nil, err
	}
	base, hc := r.URL, r.Client
	if base == "" {
		d, err := r.Project.Running()
		if err != nil {
			return nil, fmt.Errorf("%w (or set the step's server)", err)
		}
		base = d.URL()
		if d.Cert != "" {
			hc = &http.Client{Transport: client.TLSTransport(client.TrustFile(d.Cert))}
		}
	}
	// The post carries the emitting step's traceparent: the runs the
	// event queues there continue its trace.
	c := client.New(base, e.Token, client.WithHTTPClient(tracing.Client(hc)))
	return c.Emit(ctx, ev.Name, ev.payload(), ev.DedupeKey, 0)
}

var _ stepkind.Publisher = Remote{}

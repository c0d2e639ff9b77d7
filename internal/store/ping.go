package store

import "context"

// Pinger is implemented by a store that can tell whether it answers now,
// for a server's readiness (GET /readyz).
type Pinger interface {
	Ping(ctx context.Context) error
}

package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// wakeChannel is the channel of NOTIFY that the trigger runs_wake_update
// and routines_claim send on (0001_init.sql, 0005_claim_speed.sql).
const wakeChannel = "routines_wake"

// cancelChannel is the channel of NOTIFY that RunCancelRequest sends on
// (cancelRequestSQL), with the id of a running run to cancel.
const cancelChannel = "routines_cancel"

// tokenChannel is the channel of NOTIFY that TokenRevoke sends on.
const tokenChannel = "routines_tokens"

// TokenRevocations returns a channel woken by the revocations of tokens,
// through any store on the database; it shares the listener of Wakeups.
func (s *Store) TokenRevocations(ctx context.Context) <-chan struct{} {
	s.startListener()
	return s.revocations.Subscribe(ctx)
}

// The backoff between attempts to connect the listener again: from
// minBackoff, doubled after each failure up to maxBackoff.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// Wakeups returns a channel woken by the writes, through any store on the
// database, that may have made a run claimable. The first call starts the
// listener: a connection of its own that LISTENs, and costs the database
// no query while nothing happens. A dead server or network is noticed by
// the connection's TCP keepalives, the Go defaults.
func (s *Store) Wakeups(ctx context.Context) <-chan struct{} {
	s.startListener()
	return s.wake.Subscribe(ctx)
}

// CancelWakeups returns a channel woken by the requests, through any
// store on the database, to cancel a running run; it shares the
// listener of Wakeups.
func (s *Store) CancelWakeups(ctx context.Context) <-chan struct{} {
	s.startListener()
	return s.cancels.Subscribe(ctx)
}

// startListener starts the listener, unless it runs or the store closed.
func (s *Store) startListener() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed && s.stopListen == nil {
		lctx, stop := context.WithCancel(context.Background())
		s.stopListen, s.listenerDone = stop, make(chan struct{})
		go s.listen(lctx)
	}
}

// listen keeps a connection listening on wakeChannel and cancelChannel
// until ctx ends, and wakes their hubs at each notification. A lost
// connection is made again after a backoff; the hubs are live only while
// one listens, and turning live again wakes every channel, since writes
// may have gone unheard.
func (s *Store) listen(ctx context.Context) {
	defer close(s.listenerDone)
	backoff := minBackoff
	for {
		err := s.listenOn(ctx, func() { backoff = minBackoff })
		s.wake.SetLive(false)
		s.cancels.SetLive(false)
		s.revocations.SetLive(false)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("store: the connection that listens for wake-ups is lost; connecting again", "err", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// listenOn connects, listens, calls listening, and wakes the hub of the
// channel of each notification until the connection fails or ctx ends.
func (s *Store) listenOn(ctx context.Context, listening func()) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig)
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	// wakeChannel last: the listener's backend shows LISTEN routines_wake
	// as its query (pg_stat_activity), as it did before cancelChannel.
	for _, ch := range []string{cancelChannel, tokenChannel, wakeChannel} {
		if _, err := conn.Exec(ctx, "LISTEN "+ch); err != nil {
			return err
		}
	}
	listening()
	s.wake.SetLive(true)
	s.cancels.SetLive(true)
	s.revocations.SetLive(true)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		switch n.Channel {
		case cancelChannel:
			s.cancels.Wake()
		case tokenChannel:
			s.revocations.Wake()
		default:
			s.wake.Wake()
		}
	}
}

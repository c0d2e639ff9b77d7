package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/routines-dev/routines/internal/metrics"
)

// Limits keep clients from starving the daemon: of time (a body sent a
// byte a second), of connections and file descriptors (thousands of idle
// connections), and of memory (many large bodies at once).
type Limits struct {
	// ReadHeaderTimeout bounds reading a request's headers; ReadTimeout the
	// whole request, body included; WriteTimeout the answer; IdleTimeout a
	// kept-alive connection between requests. A long ?wait extends the read
	// and write deadlines of its own request.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	// MaxConns caps the open connections. A connection past it closes the
	// oldest idle one (never used, or between requests) to take its place;
	// when none is idle it gets a 503 and is closed.
	MaxConns int
	// MaxBodyInFlight caps the bytes of request bodies being read at once,
	// across requests; past it a request gets a 503 with Retry-After.
	MaxBodyInFlight int64
}

// DefaultLimits are the limits of `routines serve` unless its flags say
// otherwise.
var DefaultLimits = Limits{
	ReadHeaderTimeout: 10 * time.Second,
	ReadTimeout:       30 * time.Second,
	WriteTimeout:      30 * time.Second,
	IdleTimeout:       60 * time.Second,
	MaxConns:          1024,
	MaxBodyInFlight:   64 << 20,
}

// retryAfter is what a 503 for want of connections or memory asks the
// client to wait, in seconds.
const retryAfter = "1"

// HTTPServer returns the http.Server that serves s on ln within lim, and
// the listener to hand its Serve: one that holds the connections to
// lim.MaxConns and answers 503 past it, and that outlives running out of
// file descriptors. lim.MaxConns is lowered to half the soft limit of
// file descriptors, so that the store, run workspaces and step pipes of
// accepted runs always find descriptors, however many clients connect.
// (Go raises the soft limit to the hard one at start.) With tlsConf the
// server speaks TLS: its TLSConfig is set, and it is to be started with
// ServeTLS(listener, "", ""), which adds TLS above the cap, so that the
// cap counts TCP connections and a handshake never holds the accept loop.
func (s *Server) HTTPServer(ln net.Listener, lim Limits, tlsConf *tls.Config) (*http.Server, net.Listener) {
	l := newConnLimiter(ln, s.connCap(lim.MaxConns), s.log, tlsConf)
	srv := &http.Server{
		TLSConfig:         tlsConf,
		Handler:           s,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		ConnState:         l.track,
		// The server's own complaints (a handler's panic) go to the
		// daemon's log, not to the standard logger.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return srv, l
}

// bodyBudget counts the bytes of request bodies in flight.
type bodyBudget struct {
	max  int64
	used atomic.Int64
}

// take reserves n bytes, or reports that they are not there.
func (b *bodyBudget) take(n int64) bool {
	if b.max <= 0 || n == 0 {
		return true
	}
	if b.used.Add(n) > b.max {
		b.used.Add(-n)
		return false
	}
	return true
}

func (b *bodyBudget) give(n int64) {
	if b.max > 0 {
		b.used.Add(-n)
	}
}

// withBodyBudget reserves what the request's body may take before a
// handler reads it: its Content-Length, or the most a body may be
// (bodyLimit) when the client does not say. Over the budget it answers 503.
func (s *Server) withBodyBudget(w http.ResponseWriter, r *http.Request, next http.Handler) {
	n, most := int64(0), bodyLimit(r)
	switch {
	case r.Body == nil || r.Body == http.NoBody:
	case r.ContentLength > most:
		s.rejectedRequest(r, metrics.ReasonBodyTooLarge)
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", most))
		return
	case r.ContentLength >= 0:
		n = r.ContentLength
	default:
		n = most
	}
	if !s.bodies.take(n) {
		s.rejectedRequest(r, metrics.ReasonBusy)
		w.Header().Set("Retry-After", retryAfter)
		writeError(w, http.StatusServiceUnavailable, "the daemon is reading too many request bodies at once; retry later")
		return
	}
	defer s.bodies.give(n)
	next.ServeHTTP(w, r)
}

// bodyLimit is the most the body of r may be: maxBundle for a push (a
// routine's directory), maxBody for every other request.
func bodyLimit(r *http.Request) int64 {
	if r.Method == http.MethodPost && r.URL.Path == "/v1/routines" {
		return maxBundle
	}
	return maxBody
}

// extendDeadlines lets a request that waits (invoke --wait) outlive the
// read and write timeouts by as long as it waits.
func (s *Server) extendDeadlines(w http.ResponseWriter, wait time.Duration) {
	rc := http.NewResponseController(w)
	lim := s.cfg.Limits
	if lim.ReadTimeout > 0 {
		_ = rc.SetReadDeadline(time.Now().Add(wait + lim.ReadTimeout))
	}
	if lim.WriteTimeout > 0 {
		_ = rc.SetWriteDeadline(time.Now().Add(wait + lim.WriteTimeout))
	}
}

// connLimiter is a listener that holds at most max connections open.
type connLimiter struct {
	net.Listener
	max int
	log *slog.Logger

	mu   sync.Mutex
	open map[net.Conn]connInfo
	// spare is a descriptor held for the moment accept finds none left
	// (EMFILE, ENFILE): it is closed to accept and answer that connection
	// with a 503, then opened again.
	spare *os.File
	// lastEMFILE is when running out of descriptors was last logged.
	lastEMFILE time.Time
	// turningAway counts the connections being answered 503 (turnAway).
	turningAway chan struct{}
	// tls, when set, is what a connection answered 503 does its
	// handshake with: HTTP/1.1 only, whatever the server offers.
	tls *tls.Config
}

// connInfo is what the limiter knows of an open connection.
type connInfo struct {
	idle  bool      // new or between requests: may be closed for another
	since time.Time // idle since
}

func newConnLimiter(ln net.Listener, max int, log *slog.Logger, tlsConf *tls.Config) *connLimiter {
	spare, _ := os.Open(os.DevNull)
	l := &connLimiter{Listener: ln, max: max, log: log, open: map[net.Conn]connInfo{}, spare: spare, turningAway: make(chan struct{}, maxTurningAway)}
	if tlsConf != nil {
		l.tls = tlsConf.Clone()
		l.tls.NextProtos = []string{"http/1.1"}
	}
	return l
}

// busyAnswer is what a connection past the cap reads before it is closed.
var busyAnswer = func() []byte {
	body := `{"error":"the daemon has too many open connections; retry later"}` + "\n"
	return []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: " + retryAfter +
		"\r\nConnection: close\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

// Accept returns the next connection within the cap. It answers those
// past it itself, and waits out a lack of descriptors with a backoff,
// answering the connection it could take with the spare one.
func (l *connLimiter) Accept() (net.Conn, error) {
	backoff := 5 * time.Millisecond
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !isFDExhausted(err) {
				return nil, err
			}
			l.outOfDescriptors(err)
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if l.admit(c) {
			return &limitedConn{Conn: c, l: l}, nil
		}
		l.turnAway(c)
	}
}

// maxTurningAway bounds the connections past the cap being answered at
// once; past it a connection is closed unanswered.
const maxTurningAway = 64

// turnAway answers a connection past the cap 503 once it has sent its
// request (an answer before it would be a protocol error to the client),
// off the accept loop, after the TLS handshake under TLS; one that sends
// nothing within a second is closed unanswered.
func (l *connLimiter) turnAway(c net.Conn) {
	select {
	case l.turningAway <- struct{}{}:
	default:
		c.Close()
		return
	}
	go func() {
		defer func() { <-l.turningAway }()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if l.tls != nil {
			tc := tls.Server(c, l.tls)
			if tc.Handshake() != nil {
				c.Close()
				return
			}
			c = tc
		}
		var head [4096]byte
		if n, _ := c.Read(head[:]); n == 0 {
			c.Close()
			return
		}
		refuse(c)
	}()
}

// admit counts c in, closing the connection idle the longest when the cap
// is reached; it reports false when every connection is busy.
func (l *connLimiter) admit(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max > 0 && len(l.open) >= l.max {
		oldest := l.oldestIdle()
		if oldest == nil {
			return false
		}
		delete(l.open, oldest)
		oldest.Close()
	}
	l.open[c] = connInfo{idle: true, since: time.Now()}
	return true
}

// oldestIdle returns the connection idle the longest, or nil. l.mu is held.
func (l *connLimiter) oldestIdle() net.Conn {
	var oldest net.Conn
	var at time.Time
	for c, info := range l.open {
		if info.idle && (oldest == nil || info.since.Before(at)) {
			oldest, at = c, info.since
		}
	}
	return oldest
}

// track follows the state of connections: only idle ones may be closed
// for a newcomer.
func (l *connLimiter) track(c net.Conn, state http.ConnState) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, open := l.open[lc.Conn]; !open {
		return
	}
	switch state {
	case http.StateNew, http.StateIdle:
		l.open[lc.Conn] = connInfo{idle: true, since: time.Now()}
	case http.StateActive, http.StateHijacked:
		l.open[lc.Conn] = connInfo{}
	case http.StateClosed:
		delete(l.open, lc.Conn)
	}
}

func (l *connLimiter) release(c net.Conn) {
	l.mu.Lock()
	delete(l.open, c)
	l.mu.Unlock()
}

// outOfDescriptors gives a descriptor back, by closing the connection
// idle the longest, and uses the spare descriptor to answer the waiting
// connections 503, so clients hear back instead of hanging. It logs the
// shortage at most once a second. (The cap, below the descriptor limit,
// keeps connections alone from getting here; something else may.)
func (l *connLimiter) outOfDescriptors(err error) {
	l.mu.Lock()
	if time.Since(l.lastEMFILE) > time.Second {
		l.lastEMFILE = time.Now()
		l.log.Warn("out of file descriptors: closing idle connections and answering new ones 503 until some close", "err", err, "open_connections", len(l.open))
	}
	if c := l.oldestIdle(); c != nil {
		delete(l.open, c)
		c.Close()
	}
	spare := l.spare
	l.spare = nil
	l.mu.Unlock()
	if spare == nil {
		return
	}
	spare.Close()
	// Answer the whole waiting queue, not one connection a backoff: a
	// client behind a thousand others would wait minutes otherwise.
	if dl, ok := l.Listener.(interface{ SetDeadline(time.Time) error }); ok && dl.SetDeadline(time.Now().Add(50*time.Millisecond)) == nil {
		for {
			c, err := l.Listener.Accept()
			if err != nil {
				break
			}
			l.refuseNow(c)
		}
		_ = dl.SetDeadline(time.Time{})
	} else if c, err := l.Listener.Accept(); err == nil {
		l.refuseNow(c)
	}
	spare, _ = os.Open(os.DevNull)
	l.mu.Lock()
	l.spare = spare
	l.mu.Unlock()
}

// Close closes the listener and the spare descriptor.
func (l *connLimiter) Close() error {
	l.mu.Lock()
	if l.spare != nil {
		l.spare.Close()
		l.spare = nil
	}
	l.mu.Unlock()
	return l.Listener.Close()
}

// refuse answers c 503 and closes it, without waiting on a slow client.
// Out of descriptors it answers at once: the spare one is for the queue.
func refuse(c net.Conn) {
	_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = c.Write(busyAnswer)
	c.Close()
}

// refuseNow refuses c at once: a 503, or, under TLS, whose handshake
// would wait on the client, a bare close.
func (l *connLimiter) refuseNow(c net.Conn) {
	if l.tls != nil {
		c.Close()
		return
	}
	refuse(c)
}

func isFDExhausted(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// limitedConn leaves the count when it closes.
type limitedConn struct {
	net.Conn
	l    *connLimiter
	once sync.Once
}

func (c *limitedConn) Close() error {
	c.once.Do(func() { c.l.release(c.Conn) })
	return c.Conn.Close()
}

// connCap returns the connection cap to use: want, lowered to half the
// soft limit of file descriptors.
func (s *Server) connCap(want int) int {
	nofile, ok := nofileLimit()
	if !ok || nofile > math.MaxInt32 {
		return want
	}
	if half := int(nofile / 2); want > half {
		s.log.Warn("--max-conns lowered to half the file descriptor limit, to keep descriptors for runs", "max_conns", half, "nofile", nofile)
		return max(1, half)
	}
	return want
}

package trigger

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/routines-dev/routines/internal/clock"
	"github.com/routines-dev/routines/internal/routine"
)

// EmailDedupeWindow is how long the run of a message absorbs a second
// firing of the same message: one fetched again after a crash that came
// between queueing its run and saving the cursor.
const EmailDedupeWindow = 7 * 24 * time.Hour

// Reconnection backoff of an email trigger: it doubles from the first
// delay up to the cap, and starts over once a connection works.
const (
	emailBackoffMin = time.Second
	emailBackoffMax = 5 * time.Minute
)

// CursorStore keeps values of a routine's state: an email trigger keeps
// its place in the mailbox there (routine.EmailCursorKey), so that a
// restart neither replays nor skips mail.
type CursorStore interface {
	Load(ctx context.Context, routine, key string) (value string, found bool, err error)
	Save(ctx context.Context, routine, key, value string) error
}

// EmailConfig is one email: trigger of a routine and what its
// EmailWatcher needs from the daemon.
type EmailConfig struct {
	Routine string
	// Trigger is the index of the trigger in the routine's triggers:.
	Trigger int
	Email   routine.EmailTrigger
	// Resolve turns the username and password as written (a literal, or a
	// {{NAME}} reference) into their values. It is called at each
	// connection, so a rotated password is picked up by the next one.
	Resolve func(ctx context.Context, value string) (string, error)
	Cursors CursorStore
	Sink    Sink
	Logger  *slog.Logger
	// Clock stamps the firings, times the polls and reconnections and the
	// repeats of a failure in the log; nil means clock.Real.
	Clock clock.Clock
	// Problems hears of the failures of the trigger, and its recovery;
	// nil for none.
	Problems Problems
}

// EmailWatcher fires an email: trigger once per new message of its IMAP
// mailbox. It remembers the mailbox's UIDVALIDITY and the last UID it
// handled (the cursor, in the routine's state), fetches the messages past
// it, fires one run for each with the dedupe key imap:<uidvalidity>:<uid>,
// then flags or moves the message if asked, then saves the cursor. It waits
// for new mail with IDLE when the server has it, else polls, and reconnects
// with backoff after an error.
type EmailWatcher struct {
	cfg  EmailConfig
	log  *slog.Logger
	mbox string
	poll time.Duration
	// backoff is the first reconnection delay (tests shorten it).
	backoff time.Duration
	health  *health

	bg background
}

// NewEmailWatcher returns a watcher for cfg; Start begins watching.
func NewEmailWatcher(cfg EmailConfig) *EmailWatcher {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	w := &EmailWatcher{cfg: cfg, log: cfg.Logger, mbox: cfg.Email.Mailbox, poll: cfg.Email.Poll.D(), backoff: emailBackoffMin}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	w.log = w.log.With("routine", cfg.Routine, "trigger", cfg.Trigger, "mailbox", w.mailbox())
	if w.poll <= 0 {
		w.poll = routine.DefaultEmailPoll.D()
	}
	what := "email trigger " + strconv.Itoa(cfg.Trigger)
	if cfg.Email.IMAP != nil {
		what += " (" + cfg.Email.IMAP.Host + "/" + w.mailbox() + ")"
	}
	w.health = newHealth(cfg, w.log, what)
	return w
}

func (w *EmailWatcher) mailbox() string {
	if w.mbox == "" {
		return routine.DefaultMailbox
	}
	return w.mbox
}

// Start watches the mailbox in the background until ctx ends or Stop. It
// returns an error only for a trigger it cannot run at all; a server that
// cannot be reached is retried.
func (w *EmailWatcher) Start(ctx context.Context) error {
	if w.cfg.Email.IMAP == nil {
		return errors.New("email trigger without imap")
	}
	return w.bg.start(ctx, func(ctx context.Context) {
		reconnect(ctx, w.cfg.Clock, w.backoff, emailBackoffMax, w.session, func(err error, wait time.Duration) {
			w.health.failed(err, sinkLevel(err, slog.LevelWarn), "email trigger: "+err.Error()+"; reconnecting", "in", wait)
		})
	})
}

// Stop closes the connection and returns once the watcher has stopped:
// nothing fires after Stop.
func (w *EmailWatcher) Stop() { w.bg.stop() }

// emailCursor is the place of a trigger in its mailbox, with what names
// the mailbox: a cursor of another server, account or mailbox (the
// trigger was edited) is not this one's.
type emailCursor struct {
	Host        string `json:"host"`
	Username    string `json:"username"`
	Mailbox     string `json:"mailbox"`
	UIDValidity uint32 `json:"uidvalidity"`
	LastUID     uint32 `json:"last_uid"`
}

// session connects, catches up with the mailbox and waits for new mail
// until an error or ctx ends. healthy says it got as far as waiting.
func (w *EmailWatcher) session(ctx context.Context) (healthy bool, err error) {
	srv := w.cfg.Email.IMAP
	user, pass := srv.Username, srv.Password
	if w.cfg.Resolve != nil {
		if user, err = w.cfg.Resolve(ctx, srv.Username); err != nil {
			return false, fmt.Errorf("username: %w", err)
		}
		if pass, err = w.cfg.Resolve(ctx, srv.Password); err != nil {
			return false, fmt.Errorf("password: %w", err)
		}
	}
	notify := make(chan struct{}, 1)
	c, err := dialIMAP(ctx, srv, &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					select {
					case notify <- struct{}{}:
					default:
					}
				}
			},
		},
	})
	if err != nil {
		return false, err
	}
	// The client has no context: ending ctx closes the connection, which
	// ends whatever command or IDLE is waiting.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()

	if err := c.Login(user, pass).Wait(); err != nil {
		return false, fmt.Errorf("log in to %s as %s: %w", srv.Host, user, err)
	}
	readOnly := w.cfg.Email.Mark == "" && w.cfg.Email.MoveTo == ""
	sel, err := c.Select(w.mailbox(), &imap.SelectOptions{ReadOnly: readOnly}).Wait()
	if err != nil {
		return false, fmt.Errorf("select %s: %w", w.mailbox(), err)
	}
	cur, err := w.loadCursor(ctx, c, sel, user)
	if err != nil {
		return false, err
	}
	idle := c.Caps().Has(imap.CapIdle) || c.Caps().Has(imap.CapIMAP4rev2)
	w.log.Info("email trigger watching", "host", srv.Host, "uidvalidity", cur.UIDValidity, "last_uid", cur.LastUID, "idle", idle)
	for {
		if err := w.catchUp(ctx, c, cur); err != nil {
			return healthy, err
		}
		if !healthy {
			w.health.ok()
		}
		healthy = true
		if idle {
			err = w.waitIdle(ctx, c, notify)
		} else {
			err = w.waitPoll(ctx, c)
		}
		if err != nil {
			return healthy, err
		}
	}
}

// dialIMAP connects to the server of srv as its TLS mode says.
func dialIMAP(ctx context.Context, srv *routine.MailServer, opts *imapclient.Options) (*imapclient.Client, error) {
	mode := srv.TLSMode()
	port := srv.Port
	if port == 0 {
		port = 143
		if mode == routine.MailTLSImplicit {
			port = 993
		}
	}
	if mode == routine.MailTLSNone && !routine.IsLoopbackHost(srv.Host) {
		return nil, fmt.Errorf("imap.tls none is only allowed for a loopback host, not %s", srv.Host)
	}
	addr := net.JoinHostPort(srv.Host, strconv.Itoa(port))
	d := &net.Dialer{Timeout: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	tlsConfig := &tls.Config{ServerName: srv.Host, MinVersion: tls.VersionTLS12}
	var c *imapclient.Client
	switch mode {
	case routine.MailTLSImplicit:
		tc := tls.Client(conn, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("TLS with %s: %w", addr, err)
		}
		c = imapclient.New(tc, opts)
	case routine.MailTLSStartTLS:
		opts.TLSConfig = tlsConfig
		if c, err = imapclient.NewStartTLS(conn, opts); err != nil {
			conn.Close()
			return nil, fmt.Errorf("STARTTLS with %s: %w", addr, err)
		}
	default:
		c = imapclient.New(conn, opts)
	}
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting of %s: %w", addr, err)
	}
	return c, nil
}

// loadCursor returns the saved cursor of the trigger when it belongs to
// the selected mailbox. Without one (the first start, or an edited
// trigger) the trigger starts at the end of the mailbox: mail already
// there does not start runs. When UIDVALIDITY changed, the UIDs of the
// mailbox were renumbered: the trigger starts at the end too, rather than
// replay the mailbox, and says so.
func (w *EmailWatcher) loadCursor(ctx context.Context, c *imapclient.Client, sel *imap.SelectData, user string) (*emailCursor, error) {
	key := routine.EmailCursorKey(w.cfg.Trigger)
	want := emailCursor{Host: w.cfg.Email.IMAP.Host, Username: user, Mailbox: w.mailbox()}
	var cur emailCursor
	raw, found, err := w.cfg.Cursors.Load(ctx, w.cfg.Routine, key)
	if err != nil {
		return nil, fmt.Errorf("load cursor: %w", err)
	}
	if found && json.Unmarshal([]byte(raw), &cur) == nil &&
		cur.Host == want.Host && cur.Username == want.Username && cur.Mailbox == want.Mailbox {
		if cur.UIDValidity == sel.UIDValidity {
			return &cur, nil
		}
		w.log.Warn("email trigger: the mailbox's UIDVALIDITY changed (it was recreated or renumbered); messages already in it do not start runs, new ones do",
			"old_uidvalidity", cur.UIDValidity, "uidvalidity", sel.UIDValidity)
	}
	last, err := lastUID(c, sel)
	if err != nil {
		return nil, err
	}
	want.UIDValidity, want.LastUID = sel.UIDValidity, last
	if err := w.saveCursor(ctx, &want); err != nil {
		return nil, err
	}
	return &want, nil
}

// lastUID returns the highest UID of the selected mailbox: UIDNEXT - 1,
// or, from a server that does not send UIDNEXT, the UID of the last message.
func lastUID(c *imapclient.Client, sel *imap.SelectData) (uint32, error) {
	if sel.UIDNext > 0 {
		return uint32(sel.UIDNext) - 1, nil
	}
	if sel.NumMessages == 0 {
		return 0, nil
	}
	msgs, err := c.Fetch(imap.SeqSetNum(sel.NumMessages), &imap.FetchOptions{UID: true}).Collect()
	if err != nil {
		return 0, fmt.Errorf("fetch the last UID: %w", err)
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	return uint32(msgs[0].UID), nil
}

func (w *EmailWatcher) saveCursor(ctx context.Context, cur *emailCursor) error {
	data, err := json.Marshal(cur)
	if err != nil {
		return err
	}
	// The cursor must be saved even when the watcher is stopping: the run
	// of the message is queued already.
	if err := w.cfg.Cursors.Save(context.WithoutCancel(ctx), w.cfg.Routine, routine.EmailCursorKey(w.cfg.Trigger), string(data)); err != nil {
		return fmt.Errorf("save cursor: %w", err)
	}
	return nil
}

// catchUp fires the messages past the cursor, oldest first, and moves the
// cursor past each once its run is queued.
func (w *EmailWatcher) catchUp(ctx context.Context, c *imapclient.Client, cur *emailCursor) error {
	if cur.LastUID == ^uint32(0) {
		return nil
	}
	var set imap.UIDSet
	set.AddRange(imap.UID(cur.LastUID+1), 0) // 0 is *
	msgs, err := c.Fetch(set, &imap.FetchOptions{UID: true, RFC822Size: true}).Collect()
	if err != nil {
		return fmt.Errorf("list new messages: %w", err)
	}
	var uids []uint32
	sizes := map[uint32]int64{}
	for _, m := range msgs {
		// n:* always matches the last message, even when its UID is below n.
		if uid := uint32(m.UID); uid > cur.LastUID {
			uids = append(uids, uid)
			sizes[uid] = m.RFC822Size
		}
	}
	slices.Sort(uids)
	for _, uid := range uids {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := w.handle(ctx, c, cur, uid, sizes[uid]); err != nil {
			return err
		}
	}
	return nil
}

// handle fires the message uid, then marks or moves it, then saves the
// cursor past it. A crash between the firing and the cursor makes the
// next session fetch the message again; its firing then folds into the
// run already queued (the dedupe key).
func (w *EmailWatcher) handle(ctx context.Context, c *imapclient.Client, cur *emailCursor, uid uint32, size int64) error {
	section := &imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Offset: 0, Size: maxMessageRead}}
	msgs, err := c.Fetch(imap.UIDSetNum(imap.UID(uid)), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		return fmt.Errorf("fetch message %d: %w", uid, err)
	}
	var raw []byte
	found := false
	for _, m := range msgs {
		if uint32(m.UID) == uid {
			found = true
			raw = m.FindBodySection(section)
		}
	}
	if !found {
		// Expunged between the listing and the fetch: nothing to run.
		cur.LastUID = uid
		return w.saveCursor(ctx, cur)
	}
	ev := parseMail(raw, size > maxMessageRead)
	ev.Mailbox, ev.UID, ev.UIDValidity, ev.Size = w.mailbox(), uid, cur.UIDValidity, size
	payload, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode the event of message %d: %w", uid, err)
	}
	err = w.cfg.Sink(context.WithoutCancel(ctx), Fire{
		Routine: w.cfg.Routine, Trigger: w.cfg.Trigger, Kind: "email", Payload: payload, At: w.cfg.Clock.Now(),
		DedupeKey:    fmt.Sprintf("imap:%d:%d:%d", w.cfg.Trigger, cur.UIDValidity, uid),
		DedupeWindow: EmailDedupeWindow,
	})
	if err != nil {
		return fmt.Errorf("queue the run of message %d: %w", uid, err)
	}
	w.log.Info("email received", "uid", uid, "message_id", ev.MessageID, "problems", len(ev.Problems))
	switch {
	case w.cfg.Email.MoveTo != "":
		if _, err := c.Move(imap.UIDSetNum(imap.UID(uid)), w.cfg.Email.MoveTo).Wait(); err != nil {
			w.log.Warn("email trigger: move message", "uid", uid, "to", w.cfg.Email.MoveTo, "err", err)
		}
	case w.cfg.Email.Mark == routine.EmailMarkSeen:
		store := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}
		if err := c.Store(imap.UIDSetNum(imap.UID(uid)), store, nil).Close(); err != nil {
			w.log.Warn("email trigger: flag message \\Seen", "uid", uid, "err", err)
		}
	}
	cur.LastUID = uid
	return w.saveCursor(ctx, cur)
}

// waitIdle waits in IDLE until the server reports a change of the number
// of messages, the poll interval is over, or ctx ends. A NOOP first
// collects the news of mail that came while the last messages were
// handled; and a server that does not report, at the start of IDLE, the
// mail that came just before it, is still asked again after poll.
func (w *EmailWatcher) waitIdle(ctx context.Context, c *imapclient.Client, notify <-chan struct{}) error {
	if err := c.Noop().Wait(); err != nil {
		return fmt.Errorf("noop: %w", err)
	}
	select {
	case <-notify:
		return nil
	default:
	}
	cmd, err := c.Idle()
	if err != nil {
		return fmt.Errorf("idle: %w", err)
	}
	t := w.cfg.Clock.NewTimer(w.poll)
	defer t.Stop()
	select {
	case <-notify:
	case <-t.C():
	case <-ctx.Done():
	case <-c.Closed():
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("idle: %w", err)
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("idle: %w", err)
	}
	return ctx.Err()
}

// waitPoll waits one poll interval, then asks the server for news (NOOP),
// which a server without IDLE answers with the new messages' count.
func (w *EmailWatcher) waitPoll(ctx context.Context, c *imapclient.Client) error {
	t := w.cfg.Clock.NewTimer(w.poll)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.Closed():
		return errors.New("the server closed the connection")
	case <-t.C():
	}
	if err := c.Noop().Wait(); err != nil {
		return fmt.Errorf("noop: %w", err)
	}
	return nil
}

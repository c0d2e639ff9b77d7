package trigger

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/routines-dev/routines/internal/clock"
	"github.com/routines-dev/routines/internal/routine"
)

// gmailTimeout bounds each request to the Gmail API and to the token
// endpoint: a server that stops answering ends the session, which is
// retried, instead of hanging the trigger.
const gmailTimeout = time.Minute

// GmailWatcher fires an email: trigger with gmail: once per new message of
// a label of a Gmail account, through the Gmail REST API (gmailAPI). It keeps the
// account's history ID (the cursor, in the routine's state), lists the
// messages added to the label since (users.history.list), fetches each
// (users.messages.get, format raw), parses it as the IMAP watcher does and
// fires one run for each with the dedupe key gmail:<trigger>:<message id>;
// then removes UNREAD if asked, then saves the cursor. It polls, and after
// an error (the token endpoint refusing, a 429 or 5xx) starts a new
// session with backoff.
type GmailWatcher struct {
	cfg  EmailConfig
	log  *slog.Logger
	poll time.Duration
	// backoff is the first retry delay (tests shorten it).
	backoff time.Duration
	health  *health

	bg background
}

// NewGmailWatcher returns a watcher for cfg, whose Email has gmail:;
// Start begins watching.
func NewGmailWatcher(cfg EmailConfig) *GmailWatcher {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	w := &GmailWatcher{cfg: cfg, log: cfg.Logger, poll: cfg.Email.Poll.D(), backoff: emailBackoffMin}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	w.log = w.log.With("routine", cfg.Routine, "trigger", cfg.Trigger, "label", cfg.Email.Label)
	if w.poll <= 0 {
		w.poll = routine.DefaultEmailPoll.D()
	}
	w.health = newHealth(cfg, w.log, fmt.Sprintf("email trigger %d (gmail label %s)", cfg.Trigger, cfg.Email.Label))
	return w
}

// Start watches the label in the background until ctx ends or Stop. It
// returns an error only for a trigger it cannot run at all; an API or a
// token endpoint that fails is retried.
func (w *GmailWatcher) Start(ctx context.Context) error {
	if w.cfg.Email.Gmail == nil {
		return errors.New("email trigger without gmail")
	}
	return w.bg.start(ctx, func(ctx context.Context) {
		reconnect(ctx, w.cfg.Clock, w.backoff, emailBackoffMax, w.session, func(err error, wait time.Duration) {
			if authError(err) {
				// The daemon goes on: a refresh token can be replaced without
				// a restart (routines secrets set), and is read again next time.
				w.health.failed(err, slog.LevelError, "email trigger (gmail): auth: "+err.Error()+"; check client_id, client_secret, refresh_token and the token's scope; retrying", "in", wait)
				return
			}
			w.health.failed(err, sinkLevel(err, slog.LevelWarn), "email trigger (gmail): "+err.Error()+"; retrying", "in", wait)
		})
	})
}

// Stop returns once the watcher has stopped: nothing fires after Stop.
func (w *GmailWatcher) Stop() { w.bg.stop() }

// gmailCursor is the place of a trigger in the history of an account,
// with the account and label it belongs to: a cursor of another account
// or label (the trigger was edited) is not this one's.
type gmailCursor struct {
	Account   string `json:"account"`
	Label     string `json:"label"`
	LabelID   string `json:"label_id"`
	HistoryID uint64 `json:"history_id"`
}

// gmailSession is what a session knows: the API with its token source,
// and the label watched.
type gmailSession struct {
	api     *gmailAPI
	labelID string
	// names are the names of the account's labels by ID, for the event.
	names map[string]string
	cur   *gmailCursor
}

// session gets a token, finds the label, loads or starts the cursor, then
// syncs every poll until an error or ctx ends. healthy says a sync went
// through.
func (w *GmailWatcher) session(ctx context.Context) (healthy bool, err error) {
	s, err := w.connect(ctx)
	if err != nil {
		return false, err
	}
	profile, err := s.api.profile(ctx)
	if err != nil {
		return false, gmailErr("get the profile", err)
	}
	if s.cur, err = w.loadCursor(ctx, s, profile); err != nil {
		return false, err
	}
	w.log.Info("email trigger watching", "account", s.cur.Account, "label_id", s.labelID, "history_id", s.cur.HistoryID)
	for {
		if err := w.sync(ctx, s); err != nil {
			return healthy, err
		}
		if !healthy {
			w.health.ok()
		}
		healthy = true
		if err := w.cfg.Clock.Sleep(ctx, w.poll); err != nil {
			return healthy, err
		}
	}
}

// connect resolves the credentials, builds the API client and looks the
// label up by name.
func (w *GmailWatcher) connect(ctx context.Context) (*gmailSession, error) {
	g := w.cfg.Email.Gmail
	creds := []string{g.ClientID, g.ClientSecret, g.RefreshToken}
	if w.cfg.Resolve != nil {
		for i, name := range []string{"client_id", "client_secret", "refresh_token"} {
			v, err := w.cfg.Resolve(ctx, creds[i])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			creds[i] = v
		}
	}
	tokenURL := cmp.Or(g.TokenURL, routine.DefaultGmailTokenURL)
	conf := &oauth2.Config{
		ClientID: creds[0], ClientSecret: creds[1],
		// Google reads the client's credentials from the form, as its own
		// oauth2/google endpoint says.
		Endpoint: oauth2.Endpoint{TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInParams},
	}
	// The token source keeps the context it is given for its refreshes;
	// the client in it bounds them.
	tctx := context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Timeout: gmailTimeout})
	ts := conf.TokenSource(tctx, &oauth2.Token{RefreshToken: creds[2]})
	// Every request is bounded; a refused refresh reaches us as
	// *oauth2.RetrieveError.
	hc := &http.Client{Timeout: gmailTimeout, Transport: &oauth2.Transport{Source: ts, Base: http.DefaultTransport}}
	s := &gmailSession{api: newGmailAPI(hc, gmailEndpoint(g.BaseURL), cmp.Or(g.User, routine.DefaultGmailUser)), names: map[string]string{}}
	labels, err := s.api.labels(ctx)
	if err != nil {
		return nil, gmailErr("list labels", err)
	}
	for _, l := range labels {
		s.names[l.ID] = l.Name
	}
	s.labelID = findLabel(labels, w.cfg.Email.Label)
	if s.labelID == "" {
		return nil, fmt.Errorf("the account has no label %q (create it, or fix label:)", w.cfg.Email.Label)
	}
	return s, nil
}

// gmailEndpoint returns the root URL of the API: gmail/v1/ is added to
// it, so a base URL written with it (as the API's documentation shows it)
// loses it here.
func gmailEndpoint(base string) string {
	if base == "" {
		return routine.DefaultGmailBaseURL
	}
	base = strings.TrimSuffix(strings.TrimSuffix(base, "/"), "/gmail/v1")
	return base + "/"
}

// findLabel returns the ID of the label named name: the exact name, else
// one that differs in case only (Gmail keeps names unique regardless of
// case; system labels such as INBOX have their name as ID).
func findLabel(labels []gmailLabel, name string) string {
	for _, l := range labels {
		if l.Name == name || l.ID == name {
			return l.ID
		}
	}
	for _, l := range labels {
		if strings.EqualFold(l.Name, name) {
			return l.ID
		}
	}
	return ""
}

// loadCursor returns the saved cursor of the trigger when it belongs to
// the account and label. Without one (the first start, or an edited
// trigger) the trigger starts at the account's current history ID: mail
// already there does not start runs.
func (w *GmailWatcher) loadCursor(ctx context.Context, s *gmailSession, profile *gmailProfile) (*gmailCursor, error) {
	want := gmailCursor{Account: profile.EmailAddress, Label: w.cfg.Email.Label, LabelID: s.labelID}
	raw, found, err := w.cfg.Cursors.Load(ctx, w.cfg.Routine, routine.EmailCursorKey(w.cfg.Trigger))
	if err != nil {
		return nil, fmt.Errorf("load cursor: %w", err)
	}
	var cur gmailCursor
	if found && json.Unmarshal([]byte(raw), &cur) == nil &&
		cur.Account == want.Account && cur.LabelID == want.LabelID && cur.HistoryID > 0 {
		return &cur, nil
	}
	want.HistoryID = profile.HistoryID
	if err := w.saveCursor(ctx, &want); err != nil {
		return nil, err
	}
	return &want, nil
}

func (w *GmailWatcher) saveCursor(ctx context.Context, cur *gmailCursor) error {
	data, err := json.Marshal(cur)
	if err != nil {
		return err
	}
	// Saved even when the watcher is stopping: the runs are queued already.
	if err := w.cfg.Cursors.Save(context.WithoutCancel(ctx), w.cfg.Routine, routine.EmailCursorKey(w.cfg.Trigger), string(data)); err != nil {
		return fmt.Errorf("save cursor: %w", err)
	}
	return nil
}

// sync fires the messages added to the label since the cursor, oldest
// first, and moves the cursor past each history record once the runs of
// its messages are queued, then to the account's current history ID.
func (w *GmailWatcher) sync(ctx context.Context, s *gmailSession) error {
	start := s.cur.HistoryID
	page := ""
	for {
		resp, err := s.api.history(ctx, start, s.labelID, page)
		if ge := (*gmailAPIError)(nil); errors.As(err, &ge) && ge.Code == http.StatusNotFound {
			return w.restart(ctx, s)
		}
		if err != nil {
			return gmailErr("list history", err)
		}
		for _, h := range resp.History {
			for _, added := range h.MessagesAdded {
				if added.Message == nil {
					continue
				}
				if err := w.handle(ctx, s, added.Message.ID); err != nil {
					return err
				}
			}
			if err := w.advance(ctx, s, h.ID); err != nil {
				return err
			}
		}
		if resp.NextPageToken == "" {
			// The account's history ID now: the label had no other added
			// message up to it. Keeping up with it keeps the cursor from
			// growing too old on a quiet label.
			return w.advance(ctx, s, resp.HistoryID)
		}
		page = resp.NextPageToken
	}
}

// advance moves the cursor forward to id and saves it; a poll that finds
// the account as it was writes nothing.
func (w *GmailWatcher) advance(ctx context.Context, s *gmailSession, id uint64) error {
	if id <= s.cur.HistoryID {
		return nil
	}
	s.cur.HistoryID = id
	return w.saveCursor(ctx, s.cur)
}

// restart moves the cursor to the account's current history ID after
// history.list answered 404: Gmail keeps history for about a week (less,
// at times), and the cursor is older. Mail added since the cursor is not
// listed any more: it starts no run.
func (w *GmailWatcher) restart(ctx context.Context, s *gmailSession) error {
	profile, err := s.api.profile(ctx)
	if err != nil {
		return gmailErr("get the profile", err)
	}
	w.log.Warn("email trigger (gmail): the saved history ID is too old for Gmail (404); starting again from the current one: mail that came to the label in between starts no run",
		"old_history_id", s.cur.HistoryID, "history_id", profile.HistoryID)
	s.cur.HistoryID = profile.HistoryID
	return w.saveCursor(ctx, s.cur)
}

// gmailEvent is the event of a message read through the Gmail API: the
// fields of an IMAP message's, and Gmail's IDs and label names.
type gmailEvent struct {
	*MailEvent
	GmailID  string   `json:"gmail_id"`
	ThreadID string   `json:"thread_id"`
	Labels   []string `json:"labels"`
}

// handle fetches the message id, fires it, then removes UNREAD if asked.
func (w *GmailWatcher) handle(ctx context.Context, s *gmailSession, id string) error {
	msg, err := s.api.message(ctx, id)
	if ge := (*gmailAPIError)(nil); errors.As(err, &ge) && ge.Code == http.StatusNotFound {
		// Deleted between the listing and the fetch: nothing to run.
		w.log.Info("email trigger (gmail): message deleted before it was read", "gmail_id", id)
		return nil
	}
	if err != nil {
		return gmailErr("get message "+id, err)
	}
	raw, decodeErr := decodeRaw(msg.Raw)
	size := int64(len(raw))
	if decodeErr != nil {
		size = msg.SizeEstimate
	}
	truncated := len(raw) > maxMessageRead
	if truncated {
		raw = raw[:maxMessageRead]
	}
	ev := parseMail(raw, truncated)
	if decodeErr != nil {
		ev.Problems = slices.Insert(ev.Problems, 0, "the raw message from Gmail is not base64url: "+decodeErr.Error())
	}
	ev.Mailbox, ev.Size = w.cfg.Email.Label, size
	labels := make([]string, 0, len(msg.LabelIDs))
	for _, l := range msg.LabelIDs {
		labels = append(labels, cmp.Or(s.names[l], l))
	}
	payload, err := json.Marshal(gmailEvent{MailEvent: ev, GmailID: msg.ID, ThreadID: msg.ThreadID, Labels: labels})
	if err != nil {
		return fmt.Errorf("encode the event of message %s: %w", id, err)
	}
	err = w.cfg.Sink(context.WithoutCancel(ctx), Fire{
		Routine: w.cfg.Routine, Trigger: w.cfg.Trigger, Kind: "email", Payload: payload, At: w.cfg.Clock.Now(),
		DedupeKey:    fmt.Sprintf("gmail:%d:%s", w.cfg.Trigger, msg.ID),
		DedupeWindow: EmailDedupeWindow,
	})
	if err != nil {
		return fmt.Errorf("queue the run of message %s: %w", id, err)
	}
	w.log.Info("email received", "gmail_id", msg.ID, "message_id", ev.MessageID, "problems", len(ev.Problems))
	if w.cfg.Email.Mark == routine.EmailMarkSeen {
		if err := s.api.removeLabel(ctx, msg.ID, "UNREAD"); err != nil {
			w.log.Warn("email trigger (gmail): remove UNREAD (mark: seen needs the gmail.modify scope)", "gmail_id", msg.ID, "err", err)
		}
	}
	return nil
}

// decodeRaw decodes a message's raw field: base64url, padded or not.
func decodeRaw(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// gmailErr says what failed, and that the token endpoint failed when it
// did, rather than the request it was for.
func gmailErr(what string, err error) error {
	if re := (*oauth2.RetrieveError)(nil); errors.As(err, &re) {
		return fmt.Errorf("%s: the token endpoint refused to refresh the access token: %w", what, re)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// authError reports whether err is the account's or the client's
// credentials being refused: a 4xx from the token endpoint (invalid_grant,
// invalid_client), or a 401 or 403 from the API (a token without the
// scope, the API not enabled for the client's project). A 5xx or 429 of
// either is not.
func authError(err error) bool {
	if re := (*oauth2.RetrieveError)(nil); errors.As(err, &re) {
		return re.Response == nil || re.Response.StatusCode < 500 && re.Response.StatusCode != http.StatusTooManyRequests
	}
	ge := (*gmailAPIError)(nil)
	return errors.As(err, &ge) && (ge.Code == http.StatusUnauthorized || ge.Code == http.StatusForbidden)
}

// Package gmailtest gives tests a Gmail of their own on the loopback
// interface: the part of the Gmail REST API the email trigger uses (labels,
// profile, history, messages.get with format raw, messages.modify) and
// Google's OAuth2 token endpoint, answering with the JSON shapes of the
// real ones, so the official client can be pointed at it.
package gmailtest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The OAuth client and the account the server knows: the token endpoint
// issues access tokens for this client and refresh token only.
const (
	ClientID     = "1234-abc.apps.googleusercontent.com"
	ClientSecret = "client-s3cret"
	RefreshToken = "1//refresh-t0ken"
	Account      = "support@example.com"
)

// The labels of the account besides the system ones (INBOX, UNREAD):
// support has the ID SupportLabel, billing BillingLabel.
const (
	SupportLabel = "Label_7"
	BillingLabel = "Label_8"
)

// historyPage is how many history records one history.list page holds,
// small so that tests go through pages.
const historyPage = 2

// Server is a Gmail account behind the API and its token endpoint,
// stopped when the test ends. The API is at URL + "/gmail/v1/", the token
// endpoint at URL + "/token".
type Server struct {
	URL string

	t  testing.TB
	mu sync.Mutex
	// historyID is the account's current history ID; oldest the oldest
	// start history ID history.list accepts (below it: 404, as for a
	// history ID Gmail has forgotten).
	historyID uint64
	oldest    uint64
	history   []record
	msgs      map[string]*message
	nextID    int
	// token is the access token last issued; tokens counts them. Every
	// token issued stays valid, as Google's do for their hour: a request
	// a stopped client sent with its token may land after a new one.
	token  string
	tokens int
	issued map[string]bool
	// tokenFails and apiFails make the next requests to the token
	// endpoint (invalid_grant) and to the API (the status given) fail.
	tokenFails int
	apiFails   []int
	modified   []string
}

// record is a messageAdded record: the message and its labels when it was
// added (the message may be gone since).
type record struct {
	id     uint64
	msg    string
	labels []string
}

type message struct {
	raw    string // as sent in the raw field
	labels []string
	size   int
}

// Start starts a server whose account has no mail, at history ID 1000.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, historyID: 1000, msgs: map[string]*message{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.serveToken)
	mux.HandleFunc("GET /gmail/v1/users/{user}/labels", s.api(s.serveLabels))
	mux.HandleFunc("GET /gmail/v1/users/{user}/profile", s.api(s.serveProfile))
	mux.HandleFunc("GET /gmail/v1/users/{user}/history", s.api(s.serveHistory))
	mux.HandleFunc("GET /gmail/v1/users/{user}/messages/{id}", s.api(s.serveMessage))
	mux.HandleFunc("POST /gmail/v1/users/{user}/messages/{id}/modify", s.api(s.serveModify))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("gmailtest: unexpected request %s %s", r.Method, r.URL)
		googleError(w, http.StatusNotFound, "Not Found")
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// serveToken is Google's token endpoint for a refresh token grant, with
// the client's credentials in the form.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if err := r.ParseForm(); err != nil {
		s.t.Errorf("gmailtest: token request: %v", err)
	}
	f := r.PostForm
	if f.Get("grant_type") != "refresh_token" || f.Get("client_id") != ClientID || f.Get("client_secret") != ClientSecret {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error": "invalid_client", "error_description": "Unauthorized"}`)
		return
	}
	if f.Get("refresh_token") != RefreshToken || s.tokenFails > 0 {
		s.tokenFails = max(s.tokenFails-1, 0)
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error": "invalid_grant", "error_description": "Token has been expired or revoked."}`)
		return
	}
	s.tokens++
	s.token = "ya29.access-" + strconv.Itoa(s.tokens)
	if s.issued == nil {
		s.issued = map[string]bool{}
	}
	s.issued[s.token] = true
	fmt.Fprintf(w, `{"access_token": %q, "expires_in": 3599, "scope": "https://www.googleapis.com/auth/gmail.modify", "token_type": "Bearer"}`, s.token)
}

// api wraps a handler of the API: the user is me, the request carries
// an access token it issued, and the next programmed failure is answered.
func (s *Server) api(h func(w http.ResponseWriter, r *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if u := r.PathValue("user"); u != "me" {
			s.t.Errorf("gmailtest: %s: user %q, want me", r.URL.Path, u)
		}
		if got := r.Header.Get("Authorization"); !strings.HasPrefix(got, "Bearer ") || !s.issued[strings.TrimPrefix(got, "Bearer ")] {
			s.t.Errorf("gmailtest: %s: Authorization %q, want Bearer and a token issued (the last: %s)", r.URL.Path, got, s.token)
			googleError(w, http.StatusUnauthorized, "Request had invalid authentication credentials.")
			return
		}
		if len(s.apiFails) > 0 {
			code := s.apiFails[0]
			s.apiFails = s.apiFails[1:]
			googleError(w, code, http.StatusText(code))
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		h(w, r)
	}
}

// googleError answers as Google APIs do.
func googleError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"error": {"code": %d, "message": %q, "errors": [{"message": %q, "domain": "global", "reason": "failed"}], "status": "FAILED"}}`, code, msg, msg)
}

func (s *Server) serveLabels(w http.ResponseWriter, _ *http.Request) {
	fmt.Fprintf(w, `{"labels": [
  {"id": "INBOX", "name": "INBOX", "messageListVisibility": "hide", "labelListVisibility": "labelShow", "type": "system"},
  {"id": "UNREAD", "name": "UNREAD", "type": "system"},
  {"id": %q, "name": "support", "messageListVisibility": "show", "labelListVisibility": "labelShow", "type": "user"},
  {"id": %q, "name": "billing", "type": "user"}
]}`, SupportLabel, BillingLabel)
}

func (s *Server) serveProfile(w http.ResponseWriter, _ *http.Request) {
	fmt.Fprintf(w, `{"emailAddress": %q, "messagesTotal": %d, "threadsTotal": %d, "historyId": "%d"}`, Account, len(s.msgs), len(s.msgs), s.historyID)
}

// serveHistory lists the messageAdded records after startHistoryId whose
// message had the label, a page at a time.
func (s *Server) serveHistory(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	label := q.Get("labelId")
	if q.Get("historyTypes") != "messageAdded" || (label != SupportLabel && label != BillingLabel && label != "INBOX") {
		s.t.Errorf("gmailtest: history.list query %s", r.URL.RawQuery)
	}
	start, err := strconv.ParseUint(q.Get("startHistoryId"), 10, 64)
	if err != nil || start == 0 {
		googleError(w, http.StatusBadRequest, "Invalid startHistoryId")
		return
	}
	if start < s.oldest {
		googleError(w, http.StatusNotFound, "Requested entity was not found.")
		return
	}
	var recs []string
	for _, h := range s.history {
		if h.id <= start || !slices.Contains(h.labels, label) {
			continue
		}
		labels, _ := json.Marshal(h.labels)
		msg := fmt.Sprintf(`{"id": %q, "threadId": %q, "labelIds": %s}`, h.msg, "th"+h.msg, labels)
		recs = append(recs, fmt.Sprintf(`{"id": "%d", "messages": [%s], "messagesAdded": [{"message": %s}]}`, h.id, msg, msg))
	}
	skip, _ := strconv.Atoi(q.Get("pageToken"))
	recs = recs[min(skip, len(recs)):]
	next := ""
	if len(recs) > historyPage {
		recs = recs[:historyPage]
		next = fmt.Sprintf(`, "nextPageToken": "%d"`, skip+historyPage)
	}
	history := ""
	if len(recs) > 0 {
		history = `"history": [` + strings.Join(recs, ",") + `], `
	}
	fmt.Fprintf(w, `{%s"historyId": "%d"%s}`, history, s.historyID, next)
}

func (s *Server) serveMessage(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("format") != "raw" {
		s.t.Errorf("gmailtest: messages.get query %s", r.URL.RawQuery)
	}
	id := r.PathValue("id")
	m, ok := s.msgs[id]
	if !ok {
		googleError(w, http.StatusNotFound, "Requested entity was not found.")
		return
	}
	labels, _ := json.Marshal(m.labels)
	fmt.Fprintf(w, `{"id": %q, "threadId": %q, "labelIds": %s, "snippet": "…", "sizeEstimate": %d, "historyId": "%d", "internalDate": "1795420800000", "raw": %q}`,
		id, "th"+id, labels, m.size, s.historyID, m.raw)
}

func (s *Server) serveModify(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var req struct {
		AddLabelIDs    []string `json:"addLabelIds"`
		RemoveLabelIDs []string `json:"removeLabelIds"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		googleError(w, http.StatusBadRequest, err.Error())
		return
	}
	m, ok := s.msgs[id]
	if !ok {
		googleError(w, http.StatusNotFound, "Requested entity was not found.")
		return
	}
	m.labels = slices.DeleteFunc(m.labels, func(l string) bool { return slices.Contains(req.RemoveLabelIDs, l) })
	m.labels = append(m.labels, req.AddLabelIDs...)
	s.modified = append(s.modified, id)
	labels, _ := json.Marshal(m.labels)
	fmt.Fprintf(w, `{"id": %q, "threadId": %q, "labelIds": %s}`, id, "th"+id, labels)
}

// Deliver adds a message with the label IDs given and UNREAD, as Gmail
// does when mail comes in, and returns its ID. raw is sent base64url
// encoded, as Gmail sends it; the thread ID is "th" and the message ID.
func (s *Server) Deliver(raw string, labels ...string) string {
	return s.DeliverRaw(base64.URLEncoding.EncodeToString([]byte(raw)), len(raw), labels...)
}

// DeliverRaw is Deliver with the raw field as given, and its sizeEstimate.
func (s *Server) DeliverRaw(field string, size int, labels ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	id := fmt.Sprintf("18c%013x", s.nextID)
	labels = append([]string{"UNREAD"}, labels...)
	s.msgs[id] = &message{raw: field, labels: labels, size: size}
	s.historyID += 3
	s.history = append(s.history, record{id: s.historyID, msg: id, labels: slices.Clone(labels)})
	return id
}

// Delete deletes a message; its history record stays.
func (s *Server) Delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.msgs, id)
}

// Labels returns the label IDs of a message.
func (s *Server) Labels(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs[id].labels)
}

// Modified returns the IDs of the messages modified, in order.
func (s *Server) Modified() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.modified)
}

// HistoryID returns the account's current history ID.
func (s *Server) HistoryID() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.historyID
}

// ForgetHistory makes history.list answer 404 for any start before the
// current history ID, as Gmail does for a history ID too old.
func (s *Server) ForgetHistory() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oldest = s.historyID
}

// FailTokens makes the next n refreshes fail with invalid_grant.
func (s *Server) FailTokens(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenFails = n
}

// FailAPI makes the next requests to the API fail, one with each status.
func (s *Server) FailAPI(codes ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apiFails = append(s.apiFails, codes...)
}

// Tokens returns how many access tokens were issued.
func (s *Server) Tokens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokens
}

package trigger

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// gmailAPI is the part of the Gmail REST API the trigger uses — five
// calls of users.labels, users.getProfile, users.history and
// users.messages — over an OAuth2 HTTP client. google.golang.org/api's
// client for them brings in gRPC, protobuf and OpenTelemetry: 5 MB of
// binary and 4 MB of memory in every routines process.
type gmailAPI struct {
	hc   *http.Client
	base string // the user's root: …/gmail/v1/users/<user>/
}

// newGmailAPI returns the API of user at the root URL root (the API's
// host, which serves gmail/v1/).
func newGmailAPI(hc *http.Client, root, user string) *gmailAPI {
	return &gmailAPI{hc: hc, base: strings.TrimSuffix(root, "/") + "/gmail/v1/users/" + url.PathEscape(user) + "/"}
}

type gmailLabel struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type gmailProfile struct {
	EmailAddress string `json:"emailAddress"`
	HistoryID    uint64 `json:"historyId,string"`
}

type gmailHistoryPage struct {
	History []struct {
		ID            uint64 `json:"id,string"`
		MessagesAdded []struct {
			Message *struct {
				ID string `json:"id"`
			} `json:"message"`
		} `json:"messagesAdded"`
	} `json:"history"`
	NextPageToken string `json:"nextPageToken"`
	HistoryID     uint64 `json:"historyId,string"`
}

type gmailMessage struct {
	ID           string   `json:"id"`
	ThreadID     string   `json:"threadId"`
	LabelIDs     []string `json:"labelIds"`
	Raw          string   `json:"raw"`
	SizeEstimate int64    `json:"sizeEstimate"`
}

// gmailAPIError is a failing answer of the API: its status, and the
// message of Google's error body.
type gmailAPIError struct {
	Code    int
	Message string
}

func (e *gmailAPIError) Error() string {
	return fmt.Sprintf("gmail API: %d %s: %s", e.Code, http.StatusText(e.Code), e.Message)
}

func (a *gmailAPI) labels(ctx context.Context) ([]gmailLabel, error) {
	var r struct {
		Labels []gmailLabel `json:"labels"`
	}
	return r.Labels, a.call(ctx, http.MethodGet, "labels", nil, nil, &r)
}

func (a *gmailAPI) profile(ctx context.Context) (*gmailProfile, error) {
	var p gmailProfile
	return &p, a.call(ctx, http.MethodGet, "profile", nil, nil, &p)
}

// history lists a page of the messages added to a label since start.
func (a *gmailAPI) history(ctx context.Context, start uint64, label, page string) (*gmailHistoryPage, error) {
	q := url.Values{"startHistoryId": {fmt.Sprint(start)}, "labelId": {label}, "historyTypes": {"messageAdded"}}
	if page != "" {
		q.Set("pageToken", page)
	}
	var h gmailHistoryPage
	return &h, a.call(ctx, http.MethodGet, "history", q, nil, &h)
}

// message gets a message with its raw RFC 5322 text.
func (a *gmailAPI) message(ctx context.Context, id string) (*gmailMessage, error) {
	var m gmailMessage
	return &m, a.call(ctx, http.MethodGet, "messages/"+url.PathEscape(id), url.Values{"format": {"raw"}}, nil, &m)
}

// removeLabel takes a label (UNREAD) off a message.
func (a *gmailAPI) removeLabel(ctx context.Context, id, label string) error {
	body := map[string][]string{"removeLabelIds": {label}}
	return a.call(ctx, http.MethodPost, "messages/"+url.PathEscape(id)+"/modify", nil, body, nil)
}

// call sends one request and decodes the answer into out. An answer other
// than 2xx is a *gmailAPIError; a refused token refresh comes back from
// the client as *oauth2.RetrieveError, wrapped.
func (a *gmailAPI) call(ctx context.Context, method, path string, q url.Values, in, out any) error {
	u := a.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxMessageRead*2))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error.Message != "" {
			msg = e.Error.Message
		}
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		return &gmailAPIError{Code: resp.StatusCode, Message: msg}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("gmail API: %s answered something else than its JSON: %w", path, err)
	}
	return nil
}

package steps

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
)

const slackTestToken = "xoxb-test-token"

// fakeSlack is Slack's Web API method chat.postMessage, answering what
// answer says, after checking the token where Slack takes it: the
// Authorization header or the token form field (slack-go sends the
// latter for chat.postMessage).
type fakeSlack struct {
	mu     sync.Mutex
	posts  []url.Values
	answer func(w http.ResponseWriter, form url.Values)
}

func (f *fakeSlack) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/api/chat.postMessage" {
		http.NotFound(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		token = r.PostForm.Get("token")
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if token != slackTestToken {
		_, _ = w.Write([]byte(`{"ok":false,"error":"invalid_auth"}`))
		return
	}
	f.mu.Lock()
	f.posts = append(f.posts, r.PostForm)
	answer := f.answer
	f.mu.Unlock()
	if answer != nil {
		answer(w, r.PostForm)
		return
	}
	_, _ = w.Write([]byte(`{"ok":true,"channel":"C123","ts":"1700000000.000100","message":{"text":"` + r.PostForm.Get("text") + `"}}`))
}

func setupSlack(t *testing.T) (*fakeSlack, string) {
	t.Helper()
	f := &fakeSlack{}
	ts := httptest.NewServer(f)
	t.Cleanup(ts.Close)
	return f, ts.URL + "/api/"
}

func execSlack(ctx context.Context, a *routine.SlackAction) (routine.Outputs, string, error) {
	var out strings.Builder
	res, err := SlackKind{}.Execute(ctx, &stepkind.Execution{RunID: "01RUN", StepID: "notify", Attempt: 1, Action: &routine.Action{Slack: a}, Stdout: &out})
	if err != nil {
		return nil, out.String(), err
	}
	return res.Outputs, out.String(), nil
}

func TestSlackText(t *testing.T) {
	t.Parallel()
	f, base := setupSlack(t)
	out, log, err := execSlack(t.Context(), &routine.SlackAction{Token: slackTestToken, Channel: "#support-escalations", Text: "Escalation: <@U1> printer & fax", BaseURL: strings.TrimSuffix(base, "/")})
	if err != nil {
		t.Fatal(err)
	}
	if out["ts"] != "1700000000.000100" || out["channel"] != "C123" {
		t.Fatalf("outputs %v", out)
	}
	wantShape(t, "slack", out)
	if log != "posted to #support-escalations (ts 1700000000.000100)\n" || strings.Contains(log, slackTestToken) {
		t.Fatalf("log %q", log)
	}
	if len(f.posts) != 1 {
		t.Fatalf("%d posts", len(f.posts))
	}
	p := f.posts[0]
	// Not escaped: mentions and & reach Slack as written.
	if p.Get("channel") != "#support-escalations" || p.Get("text") != "Escalation: <@U1> printer & fax" || p.Has("blocks") || p.Has("thread_ts") {
		t.Fatalf("posted %v", p)
	}
}

func TestSlackBlocksInThread(t *testing.T) {
	t.Parallel()
	f, base := setupSlack(t)
	// Blocks as the YAML decoder gives them.
	blocks := []any{
		map[string]any{"type": "header", "text": map[string]any{"type": "plain_text", "text": "Escalation"}},
		map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": "*From* <@U1>"}},
		map[string]any{"type": "divider"},
	}
	out, _, err := execSlack(t.Context(), &routine.SlackAction{Token: slackTestToken, Channel: "C123", Text: "fallback", Blocks: blocks, ThreadTS: "1699999999.000200", BaseURL: base})
	if err != nil {
		t.Fatal(err)
	}
	if out["ts"] == "" {
		t.Fatalf("outputs %v", out)
	}
	p := f.posts[0]
	if p.Get("thread_ts") != "1699999999.000200" || p.Get("text") != "fallback" {
		t.Fatalf("posted %v", p)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(p.Get("blocks")), &got); err != nil {
		t.Fatalf("blocks %q: %v", p.Get("blocks"), err)
	}
	if len(got) != 3 || got[0]["type"] != "header" || got[1]["text"].(map[string]any)["text"] != "*From* <@U1>" || got[2]["type"] != "divider" {
		t.Fatalf("blocks %v", got)
	}
}

func TestSlackBadBlocks(t *testing.T) {
	t.Parallel()
	f, base := setupSlack(t)
	_, _, err := execSlack(t.Context(), &routine.SlackAction{Token: slackTestToken, Channel: "C1", Blocks: map[string]any{"type": "section"}, BaseURL: base})
	var se *stepkind.Error
	if !errors.As(err, &se) || se.Retryable || !strings.Contains(err.Error(), "Block Kit") {
		t.Fatalf("%v", err)
	}
	if len(f.posts) != 0 {
		t.Fatal("posted invalid blocks")
	}
}

func TestSlackErrors(t *testing.T) {
	t.Parallel()
	slackJSON := func(body string) func(http.ResponseWriter, url.Values) {
		return func(w http.ResponseWriter, _ url.Values) { _, _ = w.Write([]byte(body)) }
	}
	status := func(code int, header, value string) func(http.ResponseWriter, url.Values) {
		return func(w http.ResponseWriter, _ url.Values) {
			if header != "" {
				w.Header().Set(header, value)
			}
			w.WriteHeader(code)
			_, _ = w.Write([]byte(`{"ok":false,"error":"ratelimited"}`))
		}
	}
	cases := []struct {
		name      string
		token     string
		answer    func(http.ResponseWriter, url.Values)
		code      string
		retryable bool
		after     time.Duration
		msg       string
	}{
		{name: "invalid_auth", token: "xoxb-wrong", code: routine.CodeAuth, msg: "invalid_auth: check the bot token"},
		{name: "token_revoked", answer: slackJSON(`{"ok":false,"error":"token_revoked"}`), code: routine.CodeAuth, msg: "token_revoked"},
		{name: "not_authed", answer: slackJSON(`{"ok":false,"error":"not_authed"}`), code: routine.CodeAuth},
		{name: "account_inactive", answer: slackJSON(`{"ok":false,"error":"account_inactive"}`), code: routine.CodeAuth},
		{name: "missing_scope", answer: slackJSON(`{"ok":false,"error":"missing_scope","needed":"chat:write"}`), code: routine.CodeAuth, msg: "chat:write"},
		{name: "429 with Retry-After", answer: status(http.StatusTooManyRequests, "Retry-After", "7"), code: routine.CodeRateLimited, retryable: true, after: 7 * time.Second},
		{name: "429 without Retry-After", answer: status(http.StatusTooManyRequests, "", ""), code: routine.CodeRateLimited, retryable: true},
		{name: "ratelimited body", answer: slackJSON(`{"ok":false,"error":"ratelimited"}`), code: routine.CodeRateLimited, retryable: true},
		{name: "503", answer: status(http.StatusServiceUnavailable, "", ""), code: routine.CodeHTTPStatus, retryable: true, msg: "503"},
		{name: "internal_error", answer: slackJSON(`{"ok":false,"error":"internal_error"}`), code: routine.CodeHTTPStatus, retryable: true},
		{name: "channel_not_found", answer: slackJSON(`{"ok":false,"error":"channel_not_found"}`), code: routine.CodeHTTPStatus, msg: "channel_not_found: check the channel"},
		{name: "invalid_blocks", answer: slackJSON(`{"ok":false,"error":"invalid_blocks","response_metadata":{"messages":["[ERROR] must be more than 0 characters [json-pointer:/blocks/0/text/text]"]}}`), code: routine.CodeHTTPStatus, msg: "json-pointer:/blocks/0/text/text"},
		{name: "not JSON", answer: func(w http.ResponseWriter, _ url.Values) { _, _ = w.Write([]byte("<html>proxy</html>")) }, code: routine.CodeInvalidResponse, retryable: true},
		{name: "no ts", answer: slackJSON(`{"ok":true,"channel":"C123"}`), code: routine.CodeInvalidResponse, retryable: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f, base := setupSlack(t)
			f.answer = c.answer
			token := c.token
			if token == "" {
				token = slackTestToken
			}
			_, log, err := execSlack(t.Context(), &routine.SlackAction{Token: token, Channel: "#ops", Text: "hi", BaseURL: base})
			code, retryable, after := stepkind.Describe(err)
			if err == nil || code != c.code || retryable != c.retryable || after != c.after {
				t.Fatalf("got %v: code %q retryable %v after %s", err, code, retryable, after)
			}
			if !strings.Contains(err.Error(), c.msg) || strings.Contains(err.Error(), token) || log != "" {
				t.Fatalf("message %q, log %q", err, log)
			}
		})
	}
}

func TestSlackTimeout(t *testing.T) {
	t.Parallel()
	f, base := setupSlack(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	f.answer = func(http.ResponseWriter, url.Values) { <-release }
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, _, err := execSlack(ctx, &routine.SlackAction{Token: slackTestToken, Channel: "#ops", Text: "hi", BaseURL: base})
	code, retryable, _ := stepkind.Describe(err)
	if code != routine.CodeTimeout || !retryable {
		t.Fatalf("got %v: %q %v", err, code, retryable)
	}
}

func TestSlackConnectionRefused(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.NotFoundHandler())
	base := ts.URL + "/api/"
	ts.Close()
	_, _, err := execSlack(t.Context(), &routine.SlackAction{Token: slackTestToken, Channel: "#ops", Text: "hi", BaseURL: base})
	code, retryable, _ := stepkind.Describe(err)
	if err == nil || code != "" || !retryable || strings.Contains(err.Error(), slackTestToken) {
		t.Fatalf("got %v: %q %v", err, code, retryable)
	}
}

// TestSlackValuesStayStrings: a rendered value that looks like form or
// JSON syntax stays inside its string; it cannot add a form field (another
// channel) or a block.
func TestSlackValuesStayStrings(t *testing.T) {
	t.Parallel()
	f, base := setupSlack(t)
	f.answer = func(w http.ResponseWriter, _ url.Values) {
		_, _ = w.Write([]byte(`{"ok":true,"channel":"C1","ts":"1700000000.000100"}`))
	}
	const text = `hi&channel=%23admin&token=x "}],"channel":"#admin`
	blocks := []any{map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": `x"}},{"type":"section","text":{"type":"mrkdwn","text":"injected`}}}
	if _, _, err := execSlack(t.Context(), &routine.SlackAction{Token: slackTestToken, Channel: "C1", Text: text, Blocks: blocks, BaseURL: base}); err != nil {
		t.Fatal(err)
	}
	p := f.posts[0]
	if p.Get("text") != text || p["channel"][0] != "C1" || len(p["channel"]) != 1 || len(p["token"]) > 1 {
		t.Fatalf("the form was changed by a value: %v", p)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(p.Get("blocks")), &got); err != nil || len(got) != 1 {
		t.Fatalf("blocks %q (%v): a value added a block", p.Get("blocks"), err)
	}
	if s := got[0]["text"].(map[string]any)["text"]; s != blocks[0].(map[string]any)["text"].(map[string]any)["text"] {
		t.Fatalf("block text %q", s)
	}
}

func TestSlackUsageCountsBodies(t *testing.T) {
	t.Parallel()
	var sent, answered int
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sent += len(body)
		n, _ := io.WriteString(w, `{"ok":true,"channel":"C123","ts":"1700000000.000100"}`)
		answered += n
	}))
	defer ts.Close()
	res, err := SlackKind{}.Execute(t.Context(), &stepkind.Execution{RunID: "01RUN", StepID: "notify", Attempt: 1, Stdout: io.Discard,
		Action: &routine.Action{Slack: &routine.SlackAction{Token: slackTestToken, Channel: "#ops", Text: "hello", BaseURL: ts.URL + "/api"}}})
	if err != nil {
		t.Fatal(err)
	}
	if sent == 0 || res.Usage.BytesSent != int64(sent) || res.Usage.BytesReceived != int64(answered) {
		t.Fatalf("usage %+v, want %d sent and %d received", res.Usage, sent, answered)
	}
}

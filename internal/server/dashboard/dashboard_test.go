package dashboard_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/routines-dev/routines/internal/cost"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/server"
	"github.com/routines-dev/routines/internal/server/dashboard"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// statsStore is a store whose Stats are given, so that the pages of
// stats show known numbers.
type statsStore struct {
	store.Store
	stats []*store.Stats
}

func (s *statsStore) Stats(context.Context, *store.StatsParams) ([]*store.Stats, error) {
	return s.stats, nil
}

// fakeCosts prices a CPU-second at 1 and knows one budget.
type fakeCosts struct{}

func (fakeCosts) Currency() string { return "EUR" }
func (fakeCosts) Price(cpu float64, u routine.Usage) float64 {
	return cpu + u.GBSeconds
}
func (fakeCosts) Budgets(context.Context, time.Time) ([]dashboard.Budget, error) {
	return []dashboard.Budget{{Tag: "ops", Limit: 10, Spent: 9, Period: "month", OnExceed: "stop"}}, nil
}

type testBundle struct {
	st  *statsStore
	url string
	// client keeps the cookies the dashboard sets and follows no redirect.
	client *http.Client
}

func setup(t *testing.T, token string, sources dashboard.Sources) *testBundle {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st := &statsStore{Store: db}
	rts := []*routine.Routine{{Name: "r", Tags: []string{"ops"}, Triggers: []routine.Trigger{{Cron: "0 9 * * *"}}}, {Name: "other"}}
	srv := server.New(server.Config{Store: st, Queue: scheduler.NewQueue(st, nil, nil), Routines: scheduler.NewCatalog(rts),
		Token: token, Dashboard: sources})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	jar, _ := cookiejar.New(nil)
	return &testBundle{st: st, url: ts.URL, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// get fetches a path and returns the answer and its body.
func (b *testBundle) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	resp, err := b.client.Get(b.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// post sends a form as the dashboard's own page would (same origin).
func (b *testBundle) post(t *testing.T, path string, form url.Values, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.url+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.url)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the CSRF token of a page's forms.
func csrf(t *testing.T, body string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf field in the page:\n%s", body)
	}
	return m[1]
}

// addRun stores a run of routine r.
func addRun(t *testing.T, st store.Store, p store.RunCreateParams) *routine.Run {
	t.Helper()
	if p.ID == "" {
		p.ID = ulid.Make().String()
	}
	if p.Routine == "" {
		p.Routine = "r"
	}
	if p.QueuedAt.IsZero() {
		p.QueuedAt = time.Now()
	}
	if p.Trigger.Kind == "" {
		p.Trigger.Kind = routine.TriggerManual
	}
	run, err := st.RunCreate(context.Background(), &p)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func TestOpenDashboard(t *testing.T) {
	t.Parallel()
	b := setup(t, "", dashboard.Sources{})
	resp, body := b.get(t, "/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, `cron &#34;0 9 * * *&#34;`) {
		t.Fatalf("GET /: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP: %q", csp)
	}
	if resp, _ := b.get(t, "/ui/static/style.css"); resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") {
		t.Errorf("style.css: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Unknown paths of the API stay JSON; the others are the dashboard's.
	resp, body = b.get(t, "/v1/nope")
	var e map[string]string
	if resp.StatusCode != 404 || json.Unmarshal([]byte(body), &e) != nil || e["error"] == "" {
		t.Errorf("GET /v1/nope: %d %s", resp.StatusCode, body)
	}
	if resp, body := b.get(t, "/nope"); resp.StatusCode != 404 || !strings.Contains(body, "There is no page at /nope") {
		t.Errorf("GET /nope: %d %s", resp.StatusCode, body)
	}
	if resp, _ := b.get(t, "/ui/login"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("login without a token: %d", resp.StatusCode)
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	const token = "the-token-of-the-daemon"
	b := setup(t, token, dashboard.Sources{})
	resp, _ := b.get(t, "/ui/runs?state=dead")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login?next=%2Fui%2Fruns%3Fstate%3Ddead" {
		t.Fatalf("no session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := b.post(t, "/ui/login", url.Values{"token": {"wrong"}}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong token: %d", resp.StatusCode)
	}
	// A login from another site is refused, even with the token.
	if resp, _ := b.post(t, "/ui/login", url.Values{"token": {token}}, "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a cross-site login: %d", resp.StatusCode)
	}
	resp, _ = b.post(t, "/ui/login", url.Values{"token": {token}, "next": {"//evil.example/"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	c := resp.Cookies()
	if len(c) != 1 || !c[0].HttpOnly || c[0].SameSite != http.SameSiteStrictMode || strings.Contains(c[0].Value, token) || c[0].MaxAge <= 0 {
		t.Fatalf("session cookie: %+v", c)
	}
	resp, body := b.get(t, "/")
	if resp.StatusCode != 200 {
		t.Fatalf("with a session: %d", resp.StatusCode)
	}
	// A forged session is none.
	u, _ := url.Parse(b.url)
	b.client.Jar.SetCookies(u, []*http.Cookie{{Name: "routines_session", Value: "99999999999.forged", Path: "/"}})
	if resp, _ := b.get(t, "/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("a forged session: %d", resp.StatusCode)
	}
	b.client.Jar.SetCookies(u, c)
	if resp, _ := b.post(t, "/ui/logout", nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("logout without the CSRF token: %d", resp.StatusCode)
	}
	if resp, _ := b.post(t, "/ui/logout", url.Values{"csrf": {csrf(t, body)}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp, _ := b.get(t, "/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after logout: %d", resp.StatusCode)
	}
}

// The buttons change nothing without the CSRF token of the browser's
// page, nor from another site; with it, they go through the API.
func TestButtonsNeedCSRF(t *testing.T) {
	t.Parallel()
	b := setup(t, "", dashboard.Sources{})
	run := addRun(t, b.st, store.RunCreateParams{})
	_, page := b.get(t, "/ui/runs/"+run.ID)
	token := csrf(t, page)
	path := "/ui/runs/" + run.ID + "/cancel"
	for name, tc := range map[string]struct {
		form   url.Values
		header []string
	}{
		"no token":    {url.Values{}, nil},
		"wrong token": {url.Values{"csrf": {token + "x"}}, nil},
		"cross-site":  {url.Values{"csrf": {token}}, []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}},
	} {
		if resp, _ := b.post(t, path, tc.form, tc.header...); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d", name, resp.StatusCode)
		}
	}
	if got, _ := b.st.RunGet(context.Background(), run.ID); got.State != routine.StateQueued {
		t.Fatalf("a refused cancel cancelled: %s", got.State)
	}
	resp, _ := b.post(t, path, url.Values{"csrf": {token}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/runs/"+run.ID {
		t.Fatalf("cancel: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if got, _ := b.st.RunGet(context.Background(), run.ID); got.State != routine.StateCancelled {
		t.Fatalf("after cancel: %s", got.State)
	}
	// The API's refusal is shown with its status.
	resp, body := b.post(t, "/ui/runs/"+run.ID+"/replay", url.Values{"csrf": {token}})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "only dead-lettered runs are replayed") {
		t.Fatalf("replay of a run not dead: %d %s", resp.StatusCode, body)
	}
}

// Everything a run holds comes from its trigger and its steps, and is
// shown as text.
func TestHostileRunIsText(t *testing.T) {
	t.Parallel()
	b := setup(t, "", dashboard.Sources{})
	const evil = `<script>alert(1)</script>"><img src=x onerror=alert(2)>`
	payload, _ := json.Marshal(map[string]string{"x": evil})
	run := addRun(t, b.st, store.RunCreateParams{Trigger: routine.TriggerInfo{Kind: "webhook", Payload: payload},
		Input: map[string]string{"who": evil}, Tags: []string{evil}})
	now := time.Now()
	if err := b.st.Checkpoint(context.Background(), &store.CheckpointParams{
		Steps: []*routine.StepRun{{RunID: run.ID, ID: "s", Phase: routine.PhaseMain, Kind: "run", State: routine.StateFailed, Attempts: 1,
			StartedAt: &now, FinishedAt: &now, Outputs: routine.Outputs{"o": evil},
			Error: &routine.ErrorPayload{Code: "step_failed", Message: evil, RunID: run.ID}}},
		Logs: []routine.LogLine{{RunID: run.ID, Step: "s", Seq: 1, Time: now, Stream: routine.StreamStdout, Text: evil}},
	}); err != nil {
		t.Fatal(err)
	}
	_, body := b.get(t, "/ui/runs/"+run.ID)
	if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") {
		t.Fatalf("a value of the run is in the page as HTML:\n%s", body)
	}
	if n := strings.Count(body, "&lt;script&gt;alert(1)&lt;/script&gt;"); n < 4 {
		t.Errorf("the values are shown escaped %d times, want the payload, input, output, error and log line", n)
	}
	_, list := b.get(t, "/ui/runs")
	if strings.Contains(list, "<script>alert") {
		t.Fatalf("a tag is in the runs page as HTML:\n%s", list)
	}
}

func TestRunsPages(t *testing.T) {
	t.Parallel()
	b := setup(t, "", dashboard.Sources{})
	start := time.Now().Add(-time.Hour)
	for i := range 60 {
		addRun(t, b.st, store.RunCreateParams{ID: ulid.MustNew(ulid.Timestamp(start.Add(time.Duration(i)*time.Second)), nil).String(),
			QueuedAt: start.Add(time.Duration(i) * time.Second)})
	}
	rows := regexp.MustCompile(`<tr class="st-`)
	next := regexp.MustCompile(`href="(/ui/runs\?[^"]*before=[^"]*)" rel="next"`)
	_, body := b.get(t, "/ui/runs?routine=r")
	m := next.FindStringSubmatch(body)
	if n := len(rows.FindAllString(body, -1)); n != 50 || m == nil {
		t.Fatalf("first page: %d rows, next %v", n, m)
	}
	_, body = b.get(t, strings.ReplaceAll(m[1], "&amp;", "&"))
	if n := len(rows.FindAllString(body, -1)); n != 10 || next.MatchString(body) || !strings.Contains(body, "Newest") {
		t.Fatalf("second page: %d rows", n)
	}
	if resp, body := b.get(t, "/ui/runs?state=nope"); resp.StatusCode != 400 || !strings.Contains(body, "want one of queued") {
		t.Fatalf("a bad state: %d", resp.StatusCode)
	}
	if resp, body := b.get(t, "/ui/runs?since=yesterday"); resp.StatusCode != 400 || !strings.Contains(body, "2026-01-31T09:30") {
		t.Fatalf("a bad time: %d", resp.StatusCode)
	}
}

// The pages of stats show what Stats returns, priced when the daemon
// has rates.
func TestStatsPages(t *testing.T) {
	t.Parallel()
	b := setup(t, "", dashboard.Sources{Costs: fakeCosts{}})
	now := time.Now()
	var agg store.Aggregate
	agg.ByState = map[routine.State]int64{routine.StateSucceeded: 3, routine.StateFailed: 1}
	for _, d := range []time.Duration{time.Second, time.Second, time.Second, 4 * time.Second} {
		agg.Duration.Observe(d)
		agg.QueueWait.Observe(10 * time.Millisecond)
	}
	agg.CPUSeconds, agg.Usage = 2, routine.Usage{GBSeconds: 0.5, BytesSent: 1500, BytesReceived: 500}
	agg.PeakRSSKB = 250000 // 256 MB
	point := agg
	point.Start = now.Truncate(time.Minute).Add(-10 * time.Minute)
	b.st.stats = []*store.Stats{{Routine: "r", Totals: agg, Step: time.Minute, Series: []store.Aggregate{point}}}

	_, body := b.get(t, "/?range=1h")
	for _, want := range []string{"75.0%", "25.0%", "2 kB", "<polyline", "Peak memory", "256 MB"} {
		if !strings.Contains(body, want) {
			t.Errorf("routines page: no %q", want)
		}
	}
	_, body = b.get(t, "/ui/metrics?range=1h")
	if n := strings.Count(body, `<svg class="chart"`); n != 12 {
		t.Errorf("metrics page: %d charts, want 6 of all routines and 6 of r", n)
	}
	_, body = b.get(t, "/ui/costs?range=30d")
	for _, want := range []string{"2.50", "EUR", `<meter min="0" max="10"`, "<th scope=\"row\">ops</th>"} {
		if !strings.Contains(body, want) {
			t.Errorf("costs page: no %q", want)
		}
	}
}

// A local daemon's artifacts are read from the runs' workspaces, never
// through a link out of them.
func TestWorkspaceArtifacts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	run := ulid.Make().String()
	write(t, filepath.Join(dir, run, "artifacts", "s", "out", "a.txt"), "hello")
	write(t, filepath.Join(t.TempDir(), "secret"), "secret")
	symlink(t, filepath.Join("..", "..", "..", "..", "elsewhere"), filepath.Join(dir, run, "artifacts", "s", "link"))
	b := setup(t, "", dashboard.Sources{Artifacts: dashboard.Workspaces(dir)})
	addRun(t, b.st, store.RunCreateParams{ID: run})
	_, page := b.get(t, "/ui/runs/"+run)
	if !strings.Contains(page, `href="/ui/runs/`+run+`/artifacts/s/out/a.txt"`) || strings.Contains(page, "link") && strings.Contains(page, "/artifacts/s/link") {
		t.Fatalf("artifacts listed:\n%s", page)
	}
	resp, body := b.get(t, "/ui/runs/"+run+"/artifacts/s/out/a.txt")
	if resp.StatusCode != 200 || body != "hello" || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("download: %d %q %q", resp.StatusCode, body, resp.Header.Get("Content-Disposition"))
	}
	for _, p := range []string{"s/link", "s/..%2F..%2F..%2Fetc%2Fpasswd", "s/missing"} {
		if resp, _ := b.get(t, "/ui/runs/"+run+"/artifacts/"+p); resp.StatusCode < 400 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
}

func write(t *testing.T, file, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Skip("no symbolic links here:", err)
	}
}

// The server's rates price the costs page; without any, it shows usage.
func TestPriced(t *testing.T) {
	t.Parallel()
	if c := dashboard.Priced(&cost.Prices{Currency: "USD"}, nil); c != nil {
		t.Errorf("zero rates: %v, want raw usage", c)
	}
	c := dashboard.Priced(&cost.Prices{Currency: "EUR", CPUSecond: 2, GBSecond: 10}, nil)
	if c == nil || c.Currency() != "EUR" || c.Price(3, routine.Usage{GBSeconds: 0.5}) != 11 {
		t.Fatalf("priced: %v", c)
	}
	if b, err := c.Budgets(context.Background(), time.Now()); err != nil || b != nil {
		t.Errorf("no budgets: %v %v", b, err)
	}
}

// A run id that is not one never reaches the API's paths.
func TestButtonsRefuseOddIDs(t *testing.T) {
	t.Parallel()
	b := setup(t, "", dashboard.Sources{})
	_, page := b.get(t, "/ui/runs/"+addRun(t, b.st, store.RunCreateParams{}).ID)
	resp, _ := b.post(t, "/ui/runs/..%2Froutines%2Fr/rerun", url.Values{"csrf": {csrf(t, page)}})
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("an id with a slash: %d", resp.StatusCode)
	}
}

func TestAlertsFromTheStore(t *testing.T) {
	t.Parallel()
	b := setup(t, "", dashboard.Sources{})
	_, body := b.get(t, "/ui/alerts")
	if !strings.Contains(body, "No alert has fired") {
		t.Fatalf("the alerts page of a store without alerts:\n%s", body)
	}
	ctx := context.Background()
	fired := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	for _, a := range []struct{ name, to string }{{"slow", routine.AlertFiring}, {"<b>failing</b>", routine.AlertFiring}, {"<b>failing</b>", routine.AlertOK}} {
		from := routine.AlertOK
		if a.to == routine.AlertOK {
			from = routine.AlertFiring
		}
		rec := &routine.AlertRecord{Routine: "r", Alert: a.name, State: a.to, When: "p95_latency > 2s", Metric: "p95_latency",
			Value: 4.85, Threshold: 2, Runs: 3, Over: routine.Duration(15 * time.Minute), At: fired, StartedAt: fired}
		if _, ok, err := b.st.AlertTransition(ctx, &store.AlertTransitionParams{Routine: "r", Alert: a.name, From: from, To: a.to, Record: rec}); err != nil || !ok {
			t.Fatalf("transition %s to %s: %v %v", a.name, a.to, ok, err)
		}
	}
	_, body = b.get(t, "/ui/alerts")
	if strings.Count(body, "badge st-failed") != 2 || strings.Count(body, "badge st-succeeded") != 1 || !strings.Contains(body, "4.85s") {
		t.Errorf("the alerts page does not list two firings and a clearing with their value:\n%s", body)
	}
	if strings.Contains(body, "<b>failing") {
		t.Errorf("an alert's name is in the page as HTML:\n%s", body)
	}
	// Every other page says what fires now: slow, not the cleared one.
	_, runs := b.get(t, "/ui/runs")
	strip := runs[strings.Index(runs, `class="strip"`):]
	strip = strip[:strings.Index(strip, "</div>")]
	if !strings.Contains(strip, "1 alert firing") || !strings.Contains(strip, "slow") || strings.Contains(strip, "failing") {
		t.Errorf("the strip of firing alerts is %q, want slow alone", strip)
	}
}

func TestBudgetStripOnEveryPage(t *testing.T) {
	t.Parallel()
	b := setup(t, "", dashboard.Sources{Costs: fakeCosts{}})
	for _, path := range []string{"/", "/ui/runs", "/ui/alerts"} {
		_, body := b.get(t, path)
		if !strings.Contains(body, "<strong>Budgets:</strong>") || !strings.Contains(body, "90.0% of its monthly budget spent") {
			t.Errorf("%s does not say the ops budget is 90%% spent:\n%s", path, body)
		}
	}
	plain := setup(t, "", dashboard.Sources{})
	if _, body := plain.get(t, "/ui/runs"); strings.Contains(body, "Budgets:") {
		t.Errorf("a daemon without budgets shows a budget strip:\n%s", body)
	}
}

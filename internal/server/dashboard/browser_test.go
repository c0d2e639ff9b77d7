package dashboard_test

// The dashboard in a real headless Chromium (Debian's chromium, driven
// with chromedp) against a real `routines serve`: every page loads
// without a console error, the filters work, the log of a running step
// shows its lines as they are printed, and the buttons work. One browser
// serves every test of the binary, a tab each. With
// ROUTINES_SCREENSHOTS=1 the tests also save the screenshots of
// docs/dashboard.md.

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/cli/clitest"
)

var (
	browserOnce   sync.Once
	browserCtx    context.Context
	browserErr    error
	browserCancel = func() {}
)

func TestMain(m *testing.M) {
	code := m.Run()
	browserCancel()
	os.Exit(code)
}

// chromium is the browser the tests drive: $ROUTINES_CHROMIUM, or
// chromium on PATH.
func chromium() string {
	if p := os.Getenv("ROUTINES_CHROMIUM"); p != "" {
		return p
	}
	p, _ := exec.LookPath("chromium")
	return p
}

// browser returns the context of the browser the tests share, started
// at the first call. Without chromium the test is skipped, unless CI is
// set: there a missing browser must not pass as skipped tests.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := chromium()
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed, and CI is set: install Debian's chromium (.ci/run does)")
		}
		t.Skip("chromium is not installed: apt-get install chromium to run the dashboard's browser tests")
	}
	browserOnce.Do(func() {
		alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
			chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
			chromedp.Flag("disable-background-networking", true), chromedp.Flag("hide-scrollbars", true),
			chromedp.WindowSize(1280, 800))
		ctx, cancelBrowser := chromedp.NewContext(alloc)
		browserCtx, browserErr = ctx, chromedp.Do(ctx)
		browserCancel = func() { cancelBrowser(); cancelAlloc() }
	})
	if browserErr != nil {
		t.Fatalf("start %s: %v", path, browserErr)
	}
	return browserCtx
}

// tab is a browser tab of a test, which keeps the console errors and
// uncaught exceptions of its pages.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string // the daemon's URL
	mu   sync.Mutex
	errs []string
	// allowed are the pages whose error status is expected.
	allowed []string
}

func newTab(t *testing.T, base string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser(t))
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	tb := &tab{t: t, base: base}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				tb.mu.Lock()
				tb.errs = append(tb.errs, m.String()+" at "+m.URL)
				tb.mu.Unlock()
			}
		}
	}()
	tb.ctx, cancel = context.WithTimeout(ctx, time.Minute)
	t.Cleanup(cancel)
	t.Cleanup(tb.checkConsole)
	return tb
}

// do runs actions in the tab and fails the test at the first error.
func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, actions...); err != nil {
		tb.t.Fatal(err)
	}
}

// open loads a page of the dashboard and waits until its main part is
// there.
func (tb *tab) open(path string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(tb.base+path), chromedp.WaitVisible("main h1"))
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// poll waits until a JavaScript expression is true in the page, across
// the navigations (a form sent, a reload) that happen meanwhile.
func (tb *tab) poll(expr string, within time.Duration) {
	tb.t.Helper()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(tb.ctx, time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			body, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[string]("document.body.innerText"))
			tb.t.Fatalf("waiting for %s: %v; the page says:\n%s", expr, err, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// allow makes the console error of a page that answers with an error
// status on purpose (a wrong login, a missing page) expected.
func (tb *tab) allow(path string) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.allowed = append(tb.allowed, tb.base+path)
}

// checkConsole fails the test for every console error its pages had.
func (tb *tab) checkConsole() {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, e := range tb.errs {
		if !slices.ContainsFunc(tb.allowed, func(url string) bool {
			return strings.Contains(e, "Failed to load resource") && strings.HasSuffix(e, " at "+url)
		}) {
			tb.t.Errorf("console: %s", e)
		}
	}
}

// screenshot saves the page as docs/dashboard/name-{light,dark}.png, in
// the current viewport's width and the page's whole height, when
// ROUTINES_SCREENSHOTS is set.
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	if os.Getenv("ROUTINES_SCREENSHOTS") == "" {
		return
	}
	for _, scheme := range []string{"light", "dark"} {
		tb.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
			return err
		}))
		png, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			tb.t.Fatal(err)
		}
		file := filepath.Join("..", "..", "..", "docs", "dashboard", name+"-"+scheme+".png")
		if err := os.WriteFile(file, png, 0o644); err != nil {
			tb.t.Fatal(err)
		}
	}
}

// phone makes the tab's viewport a phone's (390×844), or a desktop's
// again (1280×800).
func (tb *tab) phone(on bool) {
	tb.t.Helper()
	if on {
		tb.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulatePortrait))
	} else {
		tb.do(chromedp.EmulateViewport(1280, 800))
	}
}

// The routines of the tests' project, beside a copy of examples/hello.
var routines = map[string]string{
	"slow": `name: slow
tags: [ops]
steps:
  - id: tick
    run: |
      sleep 3
      echo "first line"
      sleep 5
      echo "second line"
`,
	"broken": `name: broken
description: Fails for good, and says so
tags: [ops, billing]
dead_letter: true
steps:
  - id: fail
    run: |
      echo "<script>window.pwned = 1</script>" >&2
      exit 3
    retry: { attempts: 2, initial: 50ms, jitter: false }
on_failure:
  - id: tell
    run: echo "told someone"
`,
	"hook": `name: hook
triggers:
  - webhook: { path: /hook }
steps:
  - id: echo
    run: echo "got a payload"
`,
	"sleeper": `name: sleeper
steps:
  - id: nap
    run: |
      echo "napping"
      sleep 60
`,
}

// serve starts `routines serve` on a project of the tests' routines
// (and examples/hello), with args.
func serve(t *testing.T, env map[string]string, args ...string) *clitest.Daemon {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "project")
	if err := os.CopyFS(filepath.Join(dir, "hello"), os.DirFS(filepath.Join("..", "..", "..", "examples", "hello"))); err != nil {
		t.Fatal(err)
	}
	for name, body := range routines {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "routine.yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	getenv := func(k string) (string, bool) {
		if v, ok := env[k]; ok {
			return v, true
		}
		return os.LookupEnv(k)
	}
	return clitest.StartServeWith(t, cli.Deps{Getenv: getenv}, dir, args...)
}

// call makes a request of the daemon's API and decodes its JSON answer
// into out (when not nil); it fails the test unless the status is want.
func call(t *testing.T, d *clitest.Daemon, token, method, path, body string, want int, out any) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+d.Addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, data, want)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
}

// runOf queues a run of name and returns its id; wait="" does not wait
// for its end.
func runOf(t *testing.T, d *clitest.Daemon, token, name, wait string) string {
	t.Helper()
	var v struct {
		RunID string `json:"run_id"`
		ID    string `json:"id"`
	}
	path, code := "/v1/routines/"+name+"/runs", http.StatusAccepted
	if wait != "" {
		path, code = path+"?wait="+wait, http.StatusOK
	}
	call(t, d, token, http.MethodPost, path, "{}", code, &v)
	return v.RunID + v.ID
}

// stateOf returns the state of run id.
func stateOf(t *testing.T, d *clitest.Daemon, token, id string) string {
	t.Helper()
	var v struct{ State string }
	call(t, d, token, http.MethodGet, "/v1/runs/"+id, "", http.StatusOK, &v)
	return v.State
}

func TestBrowserPages(t *testing.T) {
	t.Parallel()
	d := serve(t, nil)
	hello := runOf(t, d, "", "hello", "30s")
	broken := runOf(t, d, "", "broken", "30s")
	call(t, d, "", http.MethodPost, "/hooks/hook", `{"note": "<img src=x onerror=\"window.pwned=2\">", "n": 1}`, http.StatusAccepted, nil)
	tb := newTab(t, "http://"+d.Addr)

	tb.open("/")
	if got := eval[int](tb, `document.querySelectorAll("table.routines tbody tr").length`); got != len(routines)+1 {
		t.Errorf("routines page: %d rows, want %d", got, len(routines)+1)
	}
	tb.screenshot("routines")
	for _, rg := range []string{"1h", "7d", "30d"} {
		tb.do(chromedp.Click(`.range a[href="?range=`+rg+`"]`), chromedp.WaitVisible(`.range a[aria-current="true"][href="?range=`+rg+`"]`))
	}

	tb.open("/ui/runs")
	tb.screenshot("runs")
	tb.phone(true)
	tb.screenshot("runs-phone")
	tb.phone(false)

	tb.open("/ui/runs/" + hello)
	if !eval[bool](tb, `document.querySelector("svg.timeline") !== null && document.querySelectorAll(".artifacts a").length === 1`) {
		t.Error("the page of a run of hello has no timeline or no artifact")
	}
	tb.screenshot("run")
	tb.phone(true)
	tb.screenshot("run-phone")
	tb.phone(false)

	// What a run printed and what its trigger sent is shown as text,
	// never run.
	tb.open("/ui/runs/" + broken)
	tb.screenshot("run-failed")
	tb.open("/ui/runs?routine=hook")
	tb.do(chromedp.Click("table.runs tbody a"), chromedp.WaitVisible("#h-trigger"))
	if !strings.Contains(eval[string](tb, `document.querySelector("main").innerText`), `<img src=x onerror=\"window.pwned=2\">`) {
		t.Errorf("the trigger payload is not shown as text: %s", eval[string](tb, `document.querySelector("main").innerText`))
	}
	for _, page := range []string{"", "/ui/runs/" + broken} {
		if page != "" {
			tb.open(page)
		}
		if eval[bool](tb, `window.pwned !== undefined`) || eval[int](tb, `document.scripts.length`) != 1 {
			t.Errorf("%s: a payload ran as script", page)
		}
	}

	tb.open("/ui/metrics")
	tb.screenshot("metrics")
	tb.open("/ui/costs?range=30d")
	tb.screenshot("costs")
	tb.open("/ui/alerts")
	tb.screenshot("alerts")
	tb.allow("/ui/nope")
	tb.open("/ui/nope")
	if got := eval[string](tb, `document.querySelector("main h1").textContent`); got != "Not Found" {
		t.Errorf("an unknown page: %q", got)
	}
}

func TestBrowserRunsFilters(t *testing.T) {
	t.Parallel()
	d := serve(t, nil)
	hello := runOf(t, d, "", "hello", "30s")
	broken := runOf(t, d, "", "broken", "30s")
	runOf(t, d, "", "hello", "30s")
	tb := newTab(t, "http://"+d.Addr)
	rows := func() []string {
		return eval[[]string](tb, `[...document.querySelectorAll("table.runs tbody tr")].map(r => r.cells[0].innerText + " " + r.cells[1].innerText + " " + r.cells[2].innerText)`)
	}

	// filter fills the form (the fields not given emptied), sends it
	// and returns the rows of the page it leads to.
	filter := func(fields map[string]string) []string {
		t.Helper()
		tb.do(chromedp.WaitVisible(".filters button"))
		values := map[string]string{"routine": "", "state": "", "trigger": "", "tag": "", "id": ""}
		maps.Copy(values, fields)
		js, _ := json.Marshal(values)
		if !eval[bool](tb, `Object.entries(`+string(js)+`).every(([k, v]) => { const e = document.getElementById("f-" + k); e.value = v; return e.value === v; })`) {
			t.Fatalf("the form takes no %v", fields)
		}
		tb.do(chromedp.Click(".filters button"))
		tb.poll(`document.readyState === "complete" && Object.entries(`+string(js)+`).every(([k, v]) => new URLSearchParams(location.search).get(k) === v)`, 5*time.Second)
		return rows()
	}
	tb.open("/ui/runs")
	if got := rows(); len(got) != 3 {
		t.Fatalf("unfiltered: %q", got)
	}
	if got := filter(map[string]string{"routine": "hello"}); len(got) != 2 || !strings.Contains(got[0], "hello") || !strings.Contains(got[1], "hello") {
		t.Errorf("routine=hello: %q", got)
	}
	if got := filter(map[string]string{"state": "dead"}); len(got) != 1 || !strings.HasPrefix(got[0], broken[:10]) || !strings.Contains(got[0], "dead") {
		t.Errorf("state=dead: %q", got)
	}
	if got := filter(map[string]string{"id": hello[:12]}); len(got) != 1 || !strings.HasPrefix(got[0], hello[:10]) {
		t.Errorf("id=%s: %q", hello[:12], got)
	}
	if got := filter(map[string]string{"trigger": "webhook"}); len(got) != 0 {
		t.Errorf("trigger=webhook: %q", got)
	}
	if got := filter(map[string]string{"tag": "billing", "trigger": "api"}); len(got) != 1 || !strings.HasPrefix(got[0], broken[:10]) {
		t.Errorf("tag=billing: %q", got)
	}
	// A row opens its run.
	tb.open("/ui/runs?state=dead")
	tb.do(chromedp.Click("table.runs tbody a"))
	tb.poll(`location.pathname === "/ui/runs/`+broken+`"`, 5*time.Second)
}

// The log of a running step shows its first line while the step still
// sleeps before its second.
func TestBrowserLiveLogs(t *testing.T) {
	t.Parallel()
	d := serve(t, nil)
	tb := newTab(t, "http://"+d.Addr)
	id := runOf(t, d, "", "slow", "")
	tb.open("/ui/runs/" + id)
	if !eval[bool](tb, `document.getElementById("log").dataset.follow !== undefined`) {
		t.Fatalf("the page of a run not over does not follow its log")
	}
	tb.poll(`document.getElementById("log").innerText.includes("first line")`, 10*time.Second)
	if state := stateOf(t, d, "", id); state != "running" {
		t.Errorf("the first line came when the run was %s, not while it ran", state)
	}
	if eval[bool](tb, `document.getElementById("log").innerText.includes("second line")`) {
		t.Error("the second line came with the first")
	}
	// The run ends, the page shows it final and its whole log.
	tb.poll(`document.querySelector("#run-state .badge").textContent === "succeeded"`, 20*time.Second)
	tb.poll(`document.getElementById("log").innerText.includes("second line")`, 5*time.Second)
}

// Re-run and replay go through the API, as the logged-in operator of a
// daemon with a token.
func TestBrowserLoginRerunReplay(t *testing.T) {
	t.Parallel()
	const token = "s3cret-token-for-the-dashboard"
	d := serve(t, map[string]string{"ROUTINES_TOKEN": token})
	broken := runOf(t, d, token, "broken", "30s")
	tb := newTab(t, "http://"+d.Addr)

	tb.do(chromedp.Navigate(tb.base + "/ui/runs/" + broken))
	tb.poll(`location.pathname === "/ui/login"`, 5*time.Second)
	tb.allow("/ui/login")
	tb.do(chromedp.SendKeys("#token", "wrong"), chromedp.Submit("#token"))
	tb.poll(`document.querySelector(".notice.bad") !== null`, 5*time.Second)
	tb.do(chromedp.SendKeys("#token", token), chromedp.Submit("#token"))
	tb.poll(`location.pathname === "/ui/runs/`+broken+`"`, 5*time.Second)
	if got := eval[string](tb, `document.cookie`); got != "" {
		t.Errorf("a script reads the cookies: %q", got)
	}

	tb.do(chromedp.WaitVisible("#replay"), chromedp.Click("#replay"))
	tb.poll(`location.pathname !== "/ui/runs/`+broken+`" && document.querySelector("main h1") !== null`, 10*time.Second)
	replayed := strings.TrimPrefix(eval[string](tb, `location.pathname`), "/ui/runs/")
	var run struct {
		ReplayOf string `json:"replay_of"`
	}
	call(t, d, token, http.MethodGet, "/v1/runs/"+replayed, "", http.StatusOK, &run)
	if run.ReplayOf != broken {
		t.Errorf("replay: run %s replays %q, want %s", replayed, run.ReplayOf, broken)
	}

	hello := runOf(t, d, token, "hello", "30s")
	tb.open("/ui/runs/" + hello)
	tb.do(chromedp.Click("#rerun"))
	tb.poll(`location.pathname !== "/ui/runs/`+hello+`"`, 10*time.Second)
	again := strings.TrimPrefix(eval[string](tb, `location.pathname`), "/ui/runs/")
	var rerun struct{ Routine string }
	call(t, d, token, http.MethodGet, "/v1/runs/"+again, "", http.StatusOK, &rerun)
	if rerun.Routine != "hello" {
		t.Errorf("re-run: run %s is of %q", again, rerun.Routine)
	}
}

// Cancel stops a run: a queued one at once (behind a run that holds the
// only worker), a running one with its steps.
func TestBrowserCancel(t *testing.T) {
	t.Parallel()
	d := serve(t, nil, "--workers", "1")
	running := runOf(t, d, "", "sleeper", "")
	queued := runOf(t, d, "", "sleeper", "")
	tb := newTab(t, "http://"+d.Addr)
	for _, id := range []string{queued, running} {
		tb.open("/ui/runs/" + id)
		tb.do(chromedp.Click("#cancel"))
		tb.poll(`document.querySelector("#run-state .badge") !== null && document.querySelector("#run-state .badge").textContent === "cancelled"`, 20*time.Second)
		if state := stateOf(t, d, "", id); state != "cancelled" {
			t.Errorf("run %s: %s after cancel", id, state)
		}
	}
}

// A session acts as its token: a viewer's replay is refused (403) as the
// API refuses it, and an admin reads the refusal and the making of the
// token on the audit page.
func TestBrowserTokensAudit(t *testing.T) {
	t.Parallel()
	const admin = "s3cret-admin-token-for-the-audit"
	d := serve(t, map[string]string{"ROUTINES_TOKEN": admin})
	var viewer struct{ Value string }
	call(t, d, admin, http.MethodPost, "/v1/tokens", `{"name":"ui-viewer","role":"viewer"}`, http.StatusCreated, &viewer)
	broken := runOf(t, d, admin, "broken", "30s")
	tb := newTab(t, "http://"+d.Addr)

	tb.do(chromedp.Navigate(tb.base + "/ui/runs/" + broken))
	tb.poll(`location.pathname === "/ui/login"`, 5*time.Second)
	tb.do(chromedp.SendKeys("#token", viewer.Value), chromedp.Submit("#token"))
	tb.poll(`location.pathname === "/ui/runs/`+broken+`"`, 5*time.Second)
	tb.allow("/ui/runs/" + broken + "/replay")
	tb.do(chromedp.WaitVisible("#replay"), chromedp.Click("#replay"))
	tb.poll(`document.querySelector("main") !== null && document.querySelector("main").textContent.includes("needs role invoker")`, 10*time.Second)
	tb.allow("/ui/audit")
	tb.open("/ui/audit")
	if got := eval[string](tb, `document.querySelector("main").textContent`); !strings.Contains(got, "admin") {
		t.Errorf("a viewer's audit page says %q; want it refused, for admins", got)
	}

	tb.do(chromedp.Click(".logout button"))
	tb.poll(`location.pathname === "/ui/login"`, 5*time.Second)
	tb.do(chromedp.SendKeys("#token", admin), chromedp.Submit("#token"))
	tb.poll(`location.pathname === "/"`, 5*time.Second)
	tb.open("/ui/audit")
	rows := eval[[]string](tb, `[...document.querySelectorAll("main tbody tr")].map(tr => [...tr.cells].slice(1).map(td => td.textContent.trim()).join(" "))`)
	for _, want := range []string{"ui-viewer viewer default 127.0.0.1 replay " + broken + " denied", "daemon-token admin default 127.0.0.1 token.create ui-viewer ok"} {
		if !slices.ContainsFunc(rows, func(row string) bool { return strings.HasPrefix(row, want) }) {
			t.Errorf("the audit page has no row %q: %q", want, rows)
		}
	}
	tb.screenshot("audit")
}

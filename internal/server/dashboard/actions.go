package dashboard

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/routines-dev/routines/internal/artifacts"
)

// apiRequest is r turned into a request of the API at path, with the
// token the API wants and none of the browser's cookies.
func (d *Dashboard) apiRequest(r *http.Request, method, path string) *http.Request {
	// The caller auth.require put in the context goes with it: the API
	// authorises the session's token.
	api := r.Clone(r.Context())
	api.Method, api.Body, api.ContentLength = method, http.NoBody, 0
	api.URL = &url.URL{Path: path}
	api.RequestURI = path
	api.Header = http.Header{}
	return api
}

// recorder keeps the answer of the API to a request the dashboard made.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (rec *recorder) Header() http.Header { return rec.header }
func (rec *recorder) WriteHeader(code int) {
	if rec.code == 0 {
		rec.code = code
	}
}
func (rec *recorder) Write(p []byte) (int, error) {
	rec.WriteHeader(http.StatusOK)
	return rec.body.Write(p)
}

// action returns the handler of a button of a run's page: it posts to
// the API's endpoint (whose {id} is the run's), then opens the run the
// answer names (the new run of a re-run or replay, the cancelled run), or
// shows the API's error.
func (d *Dashboard) action(endpoint string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := d.runID(w, r)
		if !ok {
			return
		}
		rec := &recorder{header: http.Header{}}
		d.cfg.API.ServeHTTP(rec, d.apiRequest(r, http.MethodPost, strings.ReplaceAll(endpoint, "{id}", id)))
		var answer struct {
			RunID string `json:"run_id"` // a queued run
			ID    string `json:"id"`     // a run
			Error string `json:"error"`
		}
		_ = json.Unmarshal(rec.body.Bytes(), &answer)
		if rec.code >= 300 {
			msg := answer.Error
			if msg == "" {
				msg = http.StatusText(rec.code)
			}
			d.fail(w, r, rec.code, msg)
			return
		}
		next := id
		for _, v := range []string{answer.RunID, answer.ID} {
			if v != "" {
				next = v
				break
			}
		}
		http.Redirect(w, r, "/ui/runs/"+url.PathEscape(next), http.StatusSeeOther)
	}
}

// runID returns the run id of the path, or answers 400 when it is not
// one (letters, digits, _ and -): the id goes into the path of an API
// request.
func (d *Dashboard) runID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if artifacts.CheckRun(id) != nil {
		d.fail(w, r, http.StatusBadRequest, "A run id is letters and digits: "+id+" is not one.")
		return "", false
	}
	return id, true
}

// logs streams a run's log lines, step ends and end as the API's
// GET /v1/runs/<id>/logs does (Server-Sent Events), for the page's
// script, which cannot send the token itself.
func (d *Dashboard) logs(w http.ResponseWriter, r *http.Request) {
	id, ok := d.runID(w, r)
	if !ok {
		return
	}
	api := d.apiRequest(r, http.MethodGet, "/v1/runs/"+id+"/logs")
	if after := r.URL.Query().Get("after"); after != "" {
		api.URL.RawQuery = "after=" + url.QueryEscape(after)
	}
	api.Header.Set("Accept", "text/event-stream")
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		api.Header.Set("Last-Event-ID", v)
	}
	d.cfg.API.ServeHTTP(w, api)
}

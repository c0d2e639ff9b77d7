package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/secrets"
	"github.com/routines-dev/routines/internal/store"
)

// Deployer takes the routines pushed to a deployment (remote mode): it
// validates a bundle before it becomes a revision, and keeps what the
// servers and workers serve in step with the store.
type Deployer interface {
	// Push validates a bundle and makes it the current revision of the
	// routine it holds. A bundle that is not a valid routine is a *Refused
	// error.
	Push(ctx context.Context, p *PushParams) (rev *store.Revision, created bool, err error)
	// Rollback makes an earlier revision of a routine (a hash, or a unique
	// prefix of one) its current one again, as a new record.
	Rollback(ctx context.Context, p *RollbackParams) (*store.Revision, error)
}

// PushParams are one push: the bundle's bytes and who sent it why.
type PushParams struct {
	Bundle    []byte
	Author    string
	Message   string
	GitCommit string
	// Namespace is the pusher's: a new routine becomes its; a routine of
	// another namespace is not found (routine.ErrNotFound).
	Namespace string
	// Admit, when set, refuses (with a *Refused) a valid routine that
	// the namespace's policy keeps out.
	Admit func(*routine.Routine) error
}

// RollbackParams name the revision a rollback makes current.
type RollbackParams struct {
	Namespace string // the caller's: a routine of another is not found
	Routine   string
	Revision  string
	Author    string
	Message   string
}

// Refused is the error of a push or rollback that is bad input: the
// bundle is no valid routine, or uses what this deployment cannot serve.
// It answers 422 with its message.
type Refused struct{ Reason string }

func (r *Refused) Error() string { return r.Reason }

// maxBundle bounds the body of a push; the bundle's own limits (the files
// it may hold once extracted) are the Deployer's.
const maxBundle = 64 << 20

// push receives POST /v1/routines: a routine directory bundled as
// tar.gz, with ?message=, ?author= and ?git_commit=.
func (s *Server) push(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Deployer == nil {
		writeError(w, http.StatusNotImplemented, "this daemon serves the routine files of its project and takes no pushes: edit the files (it reloads them), or push to a `routines server`")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBundle))
	if err != nil {
		bodyError(w, err)
		return
	}
	if len(body) == 0 {
		writeError(w, http.StatusBadRequest, "empty body: send the routine directory as a tar.gz (routines push does)")
		return
	}
	q := r.URL.Query()
	ns := callerOf(r).Namespace
	rev, created, err := s.cfg.Deployer.Push(r.Context(), &PushParams{
		Bundle: body, Author: q.Get("author"), Message: q.Get("message"), GitCommit: q.Get("git_commit"),
		Namespace: ns,
		Admit: func(rt *routine.Routine) error {
			noteTarget(r, rt.Name)
			if err := secrets.CheckNamespace(ns, rt.Secrets); err != nil {
				return &Refused{Reason: fmt.Sprintf("routine %s: %v", rt.Name, err)}
			}
			return s.checkRegion(r, ns, rt)
		},
	})
	if err != nil {
		s.deployError(w, "push", err)
		return
	}
	code := http.StatusCreated
	if !created {
		code = http.StatusOK
	}
	writeJSON(w, code, api.PushResult{Revision: apiRevision(rev, true), Created: created})
}

// revisions receives GET /v1/routines/<name>/revisions: the routine's
// deployment records, newest (the current one) first.
func (s *Server) revisions(w http.ResponseWriter, r *http.Request) {
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "limit="+v+": want a number of revisions, such as 20")
			return
		}
		limit = n
	}
	name := r.PathValue("name")
	list, err := s.cfg.Store.RevisionList(r.Context(), &store.RevisionListParams{Routine: name, Limit: limit})
	if err != nil {
		writeFailure(w, r, err)
		return
	}
	if len(list) == 0 || !ownRevisions(r, list) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no routine %q was pushed here", name))
		return
	}
	out := make([]api.Revision, len(list))
	for i, rev := range list {
		out[i] = apiRevision(rev, i == 0)
	}
	writeJSON(w, http.StatusOK, out)
}

// rollback receives POST /v1/routines/<name>/rollback.
func (s *Server) rollback(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Deployer == nil {
		writeError(w, http.StatusNotImplemented, "this daemon serves the routine files of its project: it has no revisions to roll back to")
		return
	}
	var req api.Rollback
	if !readJSON(w, r, &req) {
		return
	}
	if req.Revision == "" {
		writeError(w, http.StatusBadRequest, `no revision: send {"revision": "<hash or prefix>"} (routines revisions NAME lists them)`)
		return
	}
	rev, err := s.cfg.Deployer.Rollback(r.Context(), &RollbackParams{
		Routine: r.PathValue("name"), Revision: req.Revision, Message: req.Message, Author: r.URL.Query().Get("author"),
		Namespace: callerOf(r).Namespace,
	})
	if err != nil {
		s.deployError(w, "rollback", err)
		return
	}
	writeJSON(w, http.StatusCreated, apiRevision(rev, true))
}

// bundle receives GET /v1/routines/<name>/revisions/<rev>/bundle: the
// tar.gz of a revision, for `routines diff`.
func (s *Server) bundle(w http.ResponseWriter, r *http.Request) {
	name, want := r.PathValue("name"), r.PathValue("rev")
	list, err := s.cfg.Store.RevisionList(r.Context(), &store.RevisionListParams{Routine: name})
	if err != nil {
		writeFailure(w, r, err)
		return
	}
	if !ownRevisions(r, list) {
		list = nil
	}
	hash, err := MatchRevision(list, want)
	if err != nil {
		s.deployError(w, "bundle", err)
		return
	}
	data, err := s.cfg.Store.RevisionBundle(r.Context(), hash)
	if err != nil {
		writeFailure(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Write(data)
}

// MatchRevision finds the hash that want (a hash or a unique prefix of
// one) names among a routine's records. None wraps routine.ErrNotFound,
// several routine.ErrConflict.
func MatchRevision(list []*store.Revision, want string) (string, error) {
	found := ""
	for _, rev := range list {
		if len(want) > len(rev.Hash) || rev.Hash[:len(want)] != want || rev.Hash == found {
			continue
		}
		if found != "" {
			return "", fmt.Errorf("revision %s is ambiguous: give more of it: %w", want, routine.ErrConflict)
		}
		found = rev.Hash
	}
	if found == "" || want == "" {
		return "", fmt.Errorf("no revision %s of this routine (routines revisions NAME lists them): %w", want, routine.ErrNotFound)
	}
	return found, nil
}

// deployError answers the error of a push, rollback or bundle look-up.
func (s *Server) deployError(w http.ResponseWriter, what string, err error) {
	var refused *Refused
	switch {
	case errors.As(err, &refused):
		writeError(w, http.StatusUnprocessableEntity, refused.Reason)
	case errors.Is(err, routine.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, routine.ErrConflict):
		writeError(w, http.StatusConflict, err.Error())
	default:
		s.log.Error(what, "err", err)
		writeError(w, http.StatusInternalServerError, what+": "+err.Error())
	}
}

func apiRevision(rev *store.Revision, current bool) api.Revision {
	return api.Revision{
		Routine: rev.Routine, Revision: rev.Hash, Size: rev.Size, Author: rev.Author, Message: rev.Message,
		GitCommit: rev.GitCommit, RollbackOf: rev.RollbackOf, CreatedAt: rev.CreatedAt, Current: current,
	}
}

// ownRevisions reports whether the records of a routine (newest first)
// are of the namespace of the caller of r: those of another answer 404,
// as a routine never pushed.
func ownRevisions(r *http.Request, list []*store.Revision) bool {
	return len(list) > 0 && list[0].Namespace == callerOf(r).Namespace
}

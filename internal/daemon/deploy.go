package daemon

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/routines-dev/routines/internal/bundle"
	"github.com/routines-dev/routines/internal/clock"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/server"
	"github.com/routines-dev/routines/internal/store"
)

// Deployments is the server.Deployer of a remote server: it validates a
// pushed bundle as the CLI validated it before sending (a valid routine
// file at its root), plus what only the deployment knows (the webhook
// paths and Slack commands of the other routines, the trigger kinds it
// serves), records it, and has the server serve it at once.
type Deployments struct {
	store     store.Store
	revisions *Revisions
	check     Check
	clock     clock.Clock
}

// NewDeployments returns the deployer of a server whose routines
// revisions keeps. check vets a routine as the server's daemon vets
// them (secrets, calls); nil: none.
func NewDeployments(st store.Store, revisions *Revisions, check Check, clk clock.Clock) *Deployments {
	if clk == nil {
		clk = clock.Real{}
	}
	return &Deployments{store: st, revisions: revisions, check: check, clock: clk}
}

// Push implements server.Deployer.
func (d *Deployments) Push(ctx context.Context, p *server.PushParams) (*store.Revision, bool, error) {
	sum := sha256.Sum256(p.Bundle)
	hash := hex.EncodeToString(sum[:])
	r, err := d.validate(p.Bundle, hash)
	if err != nil {
		return nil, false, err
	}
	if p.Admit != nil {
		if err := p.Admit(r); err != nil {
			return nil, false, err
		}
	}
	rev, created, err := d.store.RevisionPut(ctx, &store.RevisionPutParams{
		Routine: r.Name, Namespace: p.Namespace, Hash: hash, Bundle: p.Bundle,
		Author: p.Author, Message: p.Message, GitCommit: p.GitCommit, Now: d.clock.Now(),
	})
	if errors.Is(err, routine.ErrConflict) {
		// Routine names are the deployment's: a name another namespace
		// took is refused without telling whose it is.
		return nil, false, &server.Refused{Reason: fmt.Sprintf("the routine name %s is taken in this deployment: rename the routine", r.Name)}
	}
	if err != nil {
		return nil, false, err
	}
	// Serve it now rather than at the next poll (this replica; the others
	// poll, or hear of it when the store tells them).
	if err := d.revisions.Sync(ctx); err != nil {
		return nil, false, err
	}
	return rev, created, nil
}

// Rollback implements server.Deployer.
func (d *Deployments) Rollback(ctx context.Context, p *server.RollbackParams) (*store.Revision, error) {
	list, err := d.store.RevisionList(ctx, &store.RevisionListParams{Routine: p.Routine})
	if err != nil {
		return nil, err
	}
	if len(list) == 0 || list[0].Namespace != cmp.Or(p.Namespace, store.DefaultNamespace) {
		return nil, fmt.Errorf("no routine %q was pushed here: %w", p.Routine, routine.ErrNotFound)
	}
	hash, err := server.MatchRevision(list, p.Revision)
	if err != nil {
		return nil, err
	}
	if hash == list[0].Hash {
		return nil, &server.Refused{Reason: fmt.Sprintf("revision %s is the current revision of %s already", bundle.Short(hash), p.Routine)}
	}
	msg := p.Message
	if msg == "" {
		msg = "rollback to " + bundle.Short(hash)
	}
	rev, _, err := d.store.RevisionPut(ctx, &store.RevisionPutParams{
		Routine: p.Routine, Namespace: list[0].Namespace, Hash: hash, RollbackOf: list[0].Hash,
		Author: p.Author, Message: msg, Now: d.clock.Now(),
	})
	if err != nil {
		return nil, err
	}
	if err := d.revisions.Sync(ctx); err != nil {
		return nil, err
	}
	return rev, nil
}

// validate extracts a pushed bundle in a temporary directory, as hostile
// data, and checks the routine it holds.
func (d *Deployments) validate(data []byte, hash string) (*routine.Routine, error) {
	tmp, err := os.MkdirTemp("", "routines-push-")
	if err != nil {
		return nil, err
	}
	defer bundle.RemoveTree(tmp)
	dir := filepath.Join(tmp, "bundle")
	if err := bundle.Extract(bytes.NewReader(data), dir, bundle.Limits{}); err != nil {
		// The reason names the entry, never the server's directories.
		reason := strings.ReplaceAll(err.Error(), "extract to "+dir+": ", "")
		return nil, &server.Refused{Reason: "the bundle cannot be extracted: " + strings.ReplaceAll(reason, tmp, "…")}
	}
	r, err := loadBundle(dir, "", hash)
	if err != nil {
		// Positions name the file as the pusher knows it.
		return nil, &server.Refused{Reason: strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), "")}
	}
	for i, t := range r.Triggers {
		if t.File != nil {
			return nil, &server.Refused{Reason: fmt.Sprintf("%s: trigger %d is a file trigger, which watches a directory of one machine: it works with `routines serve` only; a deployment takes webhook, event, cron, every, email and slack_command triggers", r.Name, i)}
		}
	}
	others := []*routine.Routine{r}
	for _, o := range d.revisions.Catalog().All() {
		if o.Name != r.Name {
			others = append(others, o)
		}
	}
	if err := CheckHooks(others); err != nil {
		return nil, &server.Refused{Reason: err.Error()}
	}
	if d.check != nil {
		if err := d.check(r, callees(r, d.revisions.Catalog())); err != nil {
			return nil, &server.Refused{Reason: fmt.Sprintf("%s: %v", r.Name, err)}
		}
	}
	return r, nil
}

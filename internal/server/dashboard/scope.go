package dashboard

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// namespaceOf is the namespace of the routine called name: the one it
// was pushed to, the default one for a project's routine or one not
// served.
func (d *Dashboard) namespaceOf(name string) string {
	if rt, ok := d.cfg.Routines.Get(name); ok && rt.Namespace != "" {
		return rt.Namespace
	}
	return store.DefaultNamespace
}

// sees reports whether the session's caller sees the routine called name:
// the pages show a token only its namespace, as the API does.
func (d *Dashboard) sees(ctx context.Context, name string) bool {
	c := Caller(ctx)
	return c == nil || d.namespaceOf(name) == c.Namespace
}

// routinesFor returns the served routines the session's caller sees.
func (d *Dashboard) routinesFor(ctx context.Context) []*routine.Routine {
	return slices.DeleteFunc(d.cfg.Routines.All(), func(rt *routine.Routine) bool { return !d.sees(ctx, rt.Name) })
}

// runScope returns the routines whose runs the session's caller sees, for
// store.RunListParams.Routines: nil when it sees every run (its namespace
// is the default one and the only one served).
func (d *Dashboard) runScope(ctx context.Context) []string {
	c := Caller(ctx)
	names, others := []string{}, false
	for _, rt := range d.cfg.Routines.All() {
		if c == nil || d.namespaceOf(rt.Name) == c.Namespace {
			names = append(names, rt.Name)
		} else {
			others = true
		}
	}
	if !others && (c == nil || c.Namespace == store.DefaultNamespace) {
		return nil
	}
	return names
}

// auditData is what the audit page shows.
type auditData struct {
	Actions []*store.Action
	Actor   string
	Since   string
	Problem string
}

// audit renders the trail of actions (an admin's): a week, or ?since=,
// of ?actor= when given; an admin of a namespace other than the default
// one sees its own namespace's.
func (d *Dashboard) audit(w http.ResponseWriter, r *http.Request) {
	c := Caller(r.Context())
	if c == nil || store.RoleRank(c.Role) < store.RoleRank(store.RoleAdmin) {
		d.fail(w, r, http.StatusForbidden, "The audit trail is an admin's: log in with an admin token.")
		return
	}
	q := r.URL.Query()
	data := auditData{Actor: q.Get("actor"), Since: q.Get("since")}
	if data.Since == "" {
		data.Since = "7d"
	}
	var span routine.Duration
	if err := span.UnmarshalText([]byte(data.Since)); err != nil {
		d.fail(w, r, http.StatusBadRequest, "since="+data.Since+": want a duration ago, such as 24h or 7d.")
		return
	}
	p := &store.ActionListParams{Since: time.Now().Add(-span.D()), Actor: data.Actor, Limit: 500}
	if c.Namespace != store.DefaultNamespace {
		p.Namespace = c.Namespace
	}
	list, err := d.cfg.Store.ActionList(r.Context(), p)
	if err != nil {
		data.Problem = storeError("audit trail", err)
	}
	slices.Reverse(list) // newest first, as the other pages
	data.Actions = list
	d.render(w, r, http.StatusOK, "audit", page{Title: "Audit", Nav: "audit", Data: data})
}

package sandbox

import (
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Building a ruleset takes some 25 system calls, a good part of what
// confining a step costs, and the steps of a run mostly share one policy.
// A ruleset can restrict any number of threads, and each restriction makes
// a domain of its own, so rulesets are kept between steps while the
// children of two steps stay apart as if each had its own ruleset.
//
// A rule holds the file its path named when the ruleset was built, not the
// path. A kept ruleset serves a policy only while every policy path still
// names the file it was built on (one stat a path); a directory that a
// step removed and made again gets a new ruleset, as it would without the
// cache. A kept ruleset holds those files as an open descriptor would, for
// at most rulesetIdle after its last step.
const (
	maxKeptRulesets = 8
	rulesetIdle     = 10 * time.Second
)

// keptRuleset is a ruleset descriptor shared by the steps of one policy.
type keptRuleset struct {
	key      string
	ids      []fileID // what the policy paths named when it was built
	fd       int
	users    int  // steps using fd now
	dropped  bool // out of the cache: closed when the last user is done
	lastUsed time.Time
}

var rulesets struct {
	sync.Mutex
	kept  []*keptRuleset // least recently used first
	timer *time.Timer    // drops idle rulesets; armed while kept is not empty
}

// acquireRuleset returns a ruleset for p, kept or built now. The caller
// calls release when the ruleset has restricted its thread.
func acquireRuleset(p *Policy) (*keptRuleset, error) {
	key := rulesetKey(p)
	if ids, ok := policyIDs(p); ok {
		rulesets.Lock()
		for i, r := range rulesets.kept {
			if r.key == key && slices.Equal(r.ids, ids) {
				r.users++
				r.lastUsed = time.Now()
				rulesets.kept = append(slices.Delete(rulesets.kept, i, i+1), r)
				rulesets.Unlock()
				return r, nil
			}
		}
		rulesets.Unlock()
	}
	fd, ids, err := newRuleset(p)
	if err != nil {
		return nil, err
	}
	r := &keptRuleset{key: key, ids: ids, fd: fd, users: 1, lastUsed: time.Now()}
	rulesets.Lock()
	defer rulesets.Unlock()
	rulesets.kept = slices.DeleteFunc(rulesets.kept, func(old *keptRuleset) bool {
		if old.key == key { // its files have changed
			old.drop()
			return true
		}
		return false
	})
	if len(rulesets.kept) == maxKeptRulesets {
		rulesets.kept[0].drop()
		rulesets.kept = slices.Delete(rulesets.kept, 0, 1)
	}
	rulesets.kept = append(rulesets.kept, r)
	if rulesets.timer == nil {
		rulesets.timer = time.AfterFunc(rulesetIdle, dropIdleRulesets)
	}
	return r, nil
}

// release ends a step's use of r.
func (r *keptRuleset) release() {
	rulesets.Lock()
	defer rulesets.Unlock()
	r.users--
	if r.dropped && r.users == 0 {
		unix.Close(r.fd)
	}
}

// drop takes r out of the cache, with rulesets locked.
func (r *keptRuleset) drop() {
	r.dropped = true
	if r.users == 0 {
		unix.Close(r.fd)
	}
}

// dropIdleRulesets drops the rulesets no step used for rulesetIdle, and
// comes back while some are left.
func dropIdleRulesets() {
	rulesets.Lock()
	defer rulesets.Unlock()
	now := time.Now()
	rulesets.kept = slices.DeleteFunc(rulesets.kept, func(r *keptRuleset) bool {
		if now.Sub(r.lastUsed) >= rulesetIdle {
			r.drop()
			return true
		}
		return false
	})
	if len(rulesets.kept) == 0 {
		rulesets.timer = nil
		return
	}
	rulesets.timer.Reset(rulesetIdle - now.Sub(rulesets.kept[0].lastUsed))
}

// rulesetKey is what the ruleset of p depends on, but for the files its
// paths name: the ABI is the same for every step of a process.
func rulesetKey(p *Policy) string {
	var b strings.Builder
	if p.Network {
		b.WriteByte('n')
	} else {
		b.WriteByte('-')
	}
	for _, path := range p.ReadWrite {
		b.WriteString(path)
		b.WriteByte(0)
	}
	b.WriteByte('\n')
	for _, path := range p.ReadOnly {
		b.WriteString(path)
		b.WriteByte(0)
	}
	return b.String()
}

// policyIDs stats p's paths, following links as opening them for a rule
// does. It reports false when a path is not absolute or cannot be
// stat'ed: building the ruleset then says why.
func policyIDs(p *Policy) ([]fileID, bool) {
	ids := make([]fileID, 0, len(p.ReadWrite)+len(p.ReadOnly))
	for _, paths := range [2][]string{p.ReadWrite, p.ReadOnly} {
		for _, path := range paths {
			var st unix.Stat_t
			if !strings.HasPrefix(path, "/") || unix.Stat(path, &st) != nil {
				return nil, false
			}
			ids = append(ids, fileID{dev: st.Dev, ino: st.Ino})
		}
	}
	return ids, true
}

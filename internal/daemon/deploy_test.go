package daemon_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/bundle"
	"github.com/routines-dev/routines/internal/daemon"
	"github.com/routines-dev/routines/internal/server"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// entry is one member of a hand-made archive.
type entry struct {
	name, body, link string
}

// archive writes entries as a tar.gz, as an attacker would, without the
// care of bundle.Create.
func archive(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if e.link != "" {
			h = &tar.Header{Name: e.name, Linkname: e.link, Typeflag: tar.TypeSymlink, Mode: 0o777}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.link == "" {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const valid = "name: ok\nsteps:\n  - id: s\n    run: echo ok\n"

// A push is hostile data: whatever it holds, the server refuses it with a
// reason (422), writes nothing outside a temporary directory of its own,
// and records no revision; a valid one is taken.
// deployStore opens a store in dir, and a deployment's revisions on it
// with a bundle cache of their own; more are had with revisions.
func deployStore(t *testing.T, dir string) (st *sqlite.Store, revisions func(cache string) *daemon.Revisions) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, func(name string) *daemon.Revisions {
		cache, err := bundle.OpenCache(filepath.Join(dir, name), bundle.CacheOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return daemon.NewRevisions(daemon.RevisionsConfig{Store: st, Cache: cache})
	}
}

func TestPushRefusesHostileBundles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, revisions := deployStore(t, dir)
	revs := revisions("cache")
	d := daemon.NewDeployments(st, revs, nil, nil)
	victim := filepath.Join(dir, "victim")
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"zip slip":                  {archive(t, entry{name: "routine.yaml", body: valid}, entry{name: "../../victim", body: "pwned"}), "cannot be extracted"},
		"absolute path":             {archive(t, entry{name: "routine.yaml", body: valid}, entry{name: victim, body: "pwned"}), "cannot be extracted"},
		"link out, then through it": {archive(t, entry{name: "routine.yaml", body: valid}, entry{name: "out", link: dir}, entry{name: "out/victim", body: "pwned"}), "cannot be extracted"},
		"routine file a link out":   {archive(t, entry{name: "routine.yaml", link: "/etc/passwd"}), "cannot be extracted"},
		"not gzip":                  {[]byte("name: ok\n"), "cannot be extracted"},
		"no routine file":           {archive(t, entry{name: "README.md", body: "hi"}), "routine.yaml"},
		"invalid routine":           {archive(t, entry{name: "routine.yaml", body: "name: ok\nstepz: []\n"}), "routine.yaml:2:1"},
		"file trigger":              {archive(t, entry{name: "routine.yaml", body: "name: w\ntriggers:\n  - file: { path: ./in }\n" + valid[9:]}), "file trigger"},
	} {
		_, _, err := d.Push(t.Context(), &server.PushParams{Bundle: tc.data})
		var refused *server.Refused
		if !errors.As(err, &refused) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want a refusal saying %q", name, err, tc.want)
		}
		if strings.Contains(err.Error(), "routines-push-") {
			t.Errorf("%s: the refusal names the server's temporary directory: %v", name, err)
		}
	}
	if _, err := os.Lstat(victim); !os.IsNotExist(err) {
		t.Fatalf("a hostile bundle wrote outside its directory: %v", err)
	}
	if cur, err := st.RevisionCurrent(t.Context()); err != nil || len(cur) != 0 {
		t.Fatalf("refused pushes left revisions: %+v %v", cur, err)
	}
	rev, created, err := d.Push(t.Context(), &server.PushParams{Bundle: archive(t, entry{name: "routine.yaml", body: valid}), Author: "ada"})
	if err != nil || !created || rev.Routine != "ok" || rev.Author != "ada" {
		t.Fatalf("a valid push: %+v created %v, %v", rev, created, err)
	}
	if r, ok := revs.Catalog().Get("ok"); !ok || r.Revision != rev.Hash || !r.Sealed {
		t.Fatalf("the pushed routine is not served at once: %+v", r)
	}
	if list, err := st.RevisionList(t.Context(), &store.RevisionListParams{Routine: "ok"}); err != nil || len(list) != 1 {
		t.Fatalf("revisions %+v %v", list, err)
	}
}

// A run executes the revision it was queued with: one older than the
// current revision is loaded from its bundle, and must carry its
// routine's namespace as the current one does, since its secrets and
// events are scoped by it. Loaded before the catalog knows the routine (a
// worker that has not read the revisions yet), it carries it too.
func TestRevisionsCarryTheNamespace(t *testing.T) {
	t.Parallel()
	st, open := deployStore(t, t.TempDir())
	revs := open("server-cache")
	d := daemon.NewDeployments(st, revs, nil, nil)
	var hashes []string
	for _, body := range []string{valid, strings.Replace(valid, "echo ok", "echo v2", 1)} {
		rev, _, err := d.Push(t.Context(), &server.PushParams{Bundle: archive(t, entry{name: "routine.yaml", body: body}), Namespace: "team-a"})
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, rev.Hash)
	}
	worker := open("worker-cache") // has read no revision yet
	for _, c := range []struct {
		revs *daemon.Revisions
		hash string
	}{{revs, hashes[0]}, {revs, hashes[1]}, {worker, hashes[0]}, {worker, hashes[1]}} {
		r, err := c.revs.Catalog().Routine(t.Context(), "ok", c.hash)
		if err != nil || r.Revision != c.hash || r.Namespace != "team-a" {
			t.Errorf("revision %s: %+v, %v; want namespace team-a", bundle.Short(c.hash), r, err)
		}
	}
}

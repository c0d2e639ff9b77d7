package dashboard

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"

	"github.com/routines-dev/routines/internal/artifacts"
)

// Artifacts lists and opens the artifacts of runs: an artifacts.Store
// (remote mode's --artifacts), or the workspaces of a local daemon
// (Workspaces).
type Artifacts interface {
	List(ctx context.Context, run string) ([]artifacts.Info, error)
	Get(ctx context.Context, run, step, name string) (io.ReadCloser, error)
}

// Workspaces reads the artifacts a local daemon's runs left in their
// workspaces, <dir>/<run id>/artifacts/<step id>/<name> (engine.Workspace):
// where they stay when no artifact store keeps them.
type Workspaces string

// List implements Artifacts: the regular files under the run's
// artifacts folder, by step then name; none when it has no folder.
func (dir Workspaces) List(_ context.Context, run string) ([]artifacts.Info, error) {
	if err := artifacts.CheckRun(run); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(string(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer root.Close()
	base := path.Join(run, "artifacts")
	var out []artifacts.Info
	err = fs.WalkDir(root.FS(), base, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		step, name, _ := strings.Cut(strings.TrimPrefix(p, base+"/"), "/")
		if name != "" {
			out = append(out, artifacts.Info{Step: step, Name: name, Size: info.Size()})
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return out, err
}

// Get implements Artifacts. Nothing outside dir is opened, whatever
// links a step left (os.Root).
func (dir Workspaces) Get(_ context.Context, run, step, name string) (io.ReadCloser, error) {
	if err := artifacts.CheckKey(run, step, name); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(string(dir))
	if err != nil {
		return nil, err
	}
	defer root.Close()
	p := path.Join(run, "artifacts", step, name)
	if fi, err := root.Lstat(p); err != nil || !fi.Mode().IsRegular() {
		return nil, artifacts.ErrNotFound
	}
	return root.Open(p)
}

// artifactLink is an artifact of a run with where to download it.
type artifactLink struct {
	artifacts.Info
	Href string
}

// listArtifacts lists the artifacts of run, or says why it cannot.
func (d *Dashboard) listArtifacts(ctx context.Context, run string) ([]artifactLink, string) {
	if d.cfg.Artifacts == nil {
		return nil, ""
	}
	infos, err := d.cfg.Artifacts.List(ctx, run)
	if err != nil {
		return nil, "The artifacts could not be listed: " + err.Error()
	}
	out := make([]artifactLink, len(infos))
	for i, a := range infos {
		out[i] = artifactLink{Info: a, Href: "/ui/runs/" + url.PathEscape(run) + "/artifacts/" + url.PathEscape(a.Step) + "/" + escapePath(a.Name)}
	}
	return out, ""
}

// escapePath escapes each element of a slash-separated path.
func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// artifact downloads an artifact of a run, as an attachment whatever it
// holds, so that a browser never renders what a step wrote.
func (d *Dashboard) artifact(w http.ResponseWriter, r *http.Request) {
	if d.cfg.Artifacts == nil {
		d.fail(w, r, http.StatusNotFound, "This daemon keeps no artifacts it can serve.")
		return
	}
	run, step, name := r.PathValue("id"), r.PathValue("step"), r.PathValue("name")
	// The run must be one the session's caller sees, as its page.
	if rec, err := d.cfg.Store.RunGet(r.Context(), run); err != nil || rec.ID != run || !d.sees(r.Context(), rec.Routine) {
		d.fail(w, r, http.StatusNotFound, "Run "+run+" has no artifact "+step+"/"+name+".")
		return
	}
	body, err := d.cfg.Artifacts.Get(r.Context(), run, step, name)
	switch {
	case errors.Is(err, artifacts.ErrNotFound) || errors.Is(err, fs.ErrNotExist):
		d.fail(w, r, http.StatusNotFound, "Run "+run+" has no artifact "+step+"/"+name+".")
		return
	case errors.Is(err, artifacts.ErrName):
		d.fail(w, r, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		d.fail(w, r, http.StatusInternalServerError, "The artifact could not be read: "+err.Error())
		return
	}
	defer body.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(name)}))
	if _, err := io.Copy(w, body); err != nil {
		// The status is sent: the broken download is all the browser
		// can be told.
		d.log.Warn("download artifact", "run_id", run, "step", step, "artifact", name, "err", err)
	}
}

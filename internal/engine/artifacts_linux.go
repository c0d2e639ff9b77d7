package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/routines-dev/routines/internal/artifacts"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/workspace"
)

// saveArtifacts puts what a main step kept in its artifacts folder into
// the artifact store, before the step is recorded succeeded: a run that
// resumes on another worker once that record is written finds them
// there. The step wrote the folder, so it is read as the workspace reads
// what a step leaves: through no link, regular files of bounded size.
// It returns the bytes it put, which the step's usage counts as sent.
func (x *runExec) saveArtifacts(ctx context.Context, step string) (sent int64, err error) {
	folder := filepath.Join(workspace.Artifacts, step)
	if _, err := os.Lstat(filepath.Join(x.workspace, folder)); errors.Is(err, fs.ErrNotExist) {
		return 0, nil // nothing kept
	}
	ws, err := workspace.Open(x.workspace)
	if err != nil {
		return 0, fmt.Errorf("save artifacts in the artifact store: %w", err)
	}
	defer ws.Close()
	err = ws.Walk(folder, workspace.MaxArtifactBytes, func(name string, f *os.File, size int64) error {
		_, err := x.e.artifacts.Put(ctx, x.run.ID, step, name, f, size)
		if err == nil {
			sent += size
		}
		return err
	})
	if err != nil {
		return sent, fmt.Errorf("save artifacts in the artifact store: %w", err)
	}
	return sent, nil
}

// fetchedDir is the workspace folder where fetched artifacts wait until
// all of a step's are there; workspace.Clean removes what a crash left.
const fetchedDir = ".fetched"

// fetchArtifacts brings into the workspace the artifacts of the main
// steps an earlier attempt of the run finished, when the workspace lacks
// them: the attempt ran on another worker. It costs nothing when the
// run resumes where it ran before (a retry from the queue, a restart),
// and one listing of the store otherwise. Each step's artifacts appear
// at once, when all are fetched and verified, so a fetch cut short is
// done again by the next attempt.
func (x *runExec) fetchArtifacts(ctx context.Context) error {
	missing := x.missingArtifacts()
	if len(missing) == 0 {
		return nil
	}
	infos, err := x.e.artifacts.List(ctx, x.run.ID)
	if err != nil {
		return fmt.Errorf("fetch the artifacts of step %s: %w", missing[0], err)
	}
	// What an attempt cut short left; RemoveAll follows no link.
	if err := os.RemoveAll(filepath.Join(x.workspace, fetchedDir)); err != nil {
		return fmt.Errorf("fetch artifacts: %w", err)
	}
	ws, err := workspace.Create(x.workspace)
	if err != nil {
		return fmt.Errorf("fetch artifacts: %w", err)
	}
	defer ws.Close()
	n := 0
	for _, info := range infos {
		if !slices.Contains(missing, info.Step) {
			continue
		}
		if err := x.fetchArtifact(ctx, ws, info); err != nil {
			return fmt.Errorf("fetch the artifacts of step %s: %w", info.Step, err)
		}
		// Moved between machines for the run, not by a step of it.
		x.addUsage(nil, routine.Usage{BytesReceived: info.Size})
		n++
	}
	for _, step := range missing {
		// A step that kept no file still has its (empty) folder.
		staged := path.Join(fetchedDir, step)
		err := ws.MkdirAll(staged)
		if err == nil {
			err = ws.Rename(staged, filepath.Join(workspace.Artifacts, step))
		}
		if err != nil {
			return fmt.Errorf("fetch the artifacts of step %s: %w", step, err)
		}
	}
	x.log.system("", "fetched %d artifact(s) of step(s) %s from the artifact store", n, strings.Join(missing, ", "))
	return nil
}

// missingArtifacts returns the steps done before whose artifacts folder
// the workspace lacks, in the order they ran.
func (x *runExec) missingArtifacts() []string {
	var missing []string
	for _, rec := range x.resume.order {
		if rec.State != routine.StateSucceeded {
			continue
		}
		i := slices.IndexFunc(x.r.Steps, func(s routine.Step) bool { return s.ID == rec.ID })
		if i < 0 || x.r.Steps[i].Artifacts == nil {
			continue
		}
		if _, err := os.Lstat(filepath.Join(x.workspace, workspace.Artifacts, rec.ID)); errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, rec.ID)
		}
	}
	return missing
}

// fetchArtifact writes one artifact, verified, into its step's staging
// folder.
func (x *runExec) fetchArtifact(ctx context.Context, ws *workspace.Dir, info artifacts.Info) error {
	rc, err := x.e.artifacts.Get(ctx, x.run.ID, info.Step, info.Name)
	if err != nil {
		return err
	}
	defer rc.Close()
	// The store's names are checked slash-separated relative paths.
	return ws.WriteFile(path.Join(fetchedDir, info.Step, info.Name), rc, workspace.MaxArtifactBytes)
}

package cli

import (
	"context"
	"io"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/routines-dev/routines/internal/artifacts"
	"github.com/routines-dev/routines/internal/artifacts/local"
	"github.com/routines-dev/routines/internal/store"
)

// artifactsUsage says what --artifacts takes.
const artifactsUsage = "want local:/shared/dir, postgres, or s3://bucket/prefix?endpoint=URL&region=R"

// openArtifacts opens the artifact store that u names (--artifacts):
// local:DIR, a directory; postgres, the deployment's database st; or a
// URL of a scheme of Deps.Artifacts (s3://…). An empty u opens none. The
// returned function closes the store.
func (g *globals) openArtifacts(ctx context.Context, u string, st store.Store) (artifacts.Store, func(), error) {
	noop := func() {}
	switch {
	case u == "":
		return nil, noop, nil
	case u == "postgres":
		p, ok := st.(artifacts.Provider)
		if !ok {
			return nil, nil, invalidf("--artifacts postgres: the store of --db is not PostgreSQL: give --artifacts s3://bucket/prefix or local:/shared/dir")
		}
		return p.Artifacts(), noop, nil
	case strings.HasPrefix(u, "local:"):
		dir := strings.TrimPrefix(u, "local:")
		if dir == "" {
			return nil, nil, invalidf("--artifacts local: names no directory: write local:/shared/dir")
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, nil, invalid(err)
		}
		s, err := local.Open(abs)
		if err != nil {
			return nil, nil, err
		}
		return s, func() { s.Close() }, nil
	}
	parsed, err := url.Parse(u)
	if err != nil || g.deps.Artifacts[parsed.Scheme] == nil {
		return nil, nil, invalidf("--artifacts %q: %s", u, artifactsUsage)
	}
	s, err := g.deps.Artifacts[parsed.Scheme](ctx, u)
	if err != nil {
		return nil, nil, invalid(err)
	}
	return s, func() {
		if c, ok := s.(io.Closer); ok {
			c.Close()
		}
	}, nil
}

// artifactsNote is what a daemon that executes runs without an artifact
// store logs at its start: what it costs.
const artifactsNote = "no artifact store: artifacts stay in this machine's work directory, and a run resumed on another worker will not find those of its finished steps; give --artifacts postgres or s3://bucket/prefix to share them"

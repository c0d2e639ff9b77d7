//go:build !linux

package engine

import "context"

// saveArtifacts does nothing: only Linux runs the steps that keep
// artifacts (docs/platforms.md).
func (x *runExec) saveArtifacts(context.Context, string) (int64, error) { return 0, nil }

// fetchArtifacts does nothing: see saveArtifacts.
func (x *runExec) fetchArtifacts(context.Context) error { return nil }

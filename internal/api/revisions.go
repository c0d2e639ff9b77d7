package api

import "time"

// Revision is one deployment record of a pushed routine, as
// GET /v1/routines/<name>/revisions lists them and a push answers.
type Revision struct {
	Routine string `json:"routine"`
	// Revision is the sha256 of the bundle, hex: the revision's id.
	// Commands show its first 12 characters, and accept any unique prefix.
	Revision   string    `json:"revision"`
	Size       int64     `json:"size"`
	Author     string    `json:"author"`
	Message    string    `json:"message"`
	GitCommit  string    `json:"git_commit,omitempty"`
	RollbackOf string    `json:"rollback_of,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	// Current marks the routine's current revision in a list.
	Current bool `json:"current"`
}

// PushResult is the answer of POST /v1/routines: the routine's current
// revision, and whether the push made it (false: the content was the
// current revision's already, and nothing changed).
type PushResult struct {
	Revision
	Created bool `json:"created"`
}

// Rollback is the body of POST /v1/routines/<name>/rollback.
type Rollback struct {
	// Revision names the revision to make current again: a hash or a
	// unique prefix of one, of the routine's history.
	Revision string `json:"revision"`
	Message  string `json:"message,omitempty"`
}

// Package artifacts keeps the files that steps hand on to later steps
// (artifacts:) where every worker of a deployment finds them: a run
// resumed on another worker fetches the artifacts of its finished steps
// from an artifact Store. It owns the Store contract — artifacts
// namespaced by run and step, each checksummed with SHA-256 when it is
// put and verified when it is read — the names a store accepts, and the
// stores' URLs. The backends live beside it: local (a directory), s3 (any
// S3-compatible bucket) and the PostgreSQL store's table
// (internal/store/postgres). The package imports no SDK, so the engine may
// depend on it.
package artifacts

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"slices"
	"strings"
)

// Store keeps the artifacts of runs. It is safe for concurrent use.
type Store interface {
	// Put stores the size bytes of r as the artifact name of step in run,
	// replacing one of the same name, with their SHA-256. r is read from
	// its current offset and may be read twice (a backend that sends the
	// checksum ahead of the bytes seeks back); a reader that holds more or
	// fewer than size bytes fails the put.
	Put(ctx context.Context, run, step, name string, r io.ReadSeeker, size int64) (Info, error)
	// Get opens an artifact. Reading it to its end verifies its size and
	// checksum: bytes that differ from those put end in an error matching
	// ErrChecksum instead of io.EOF. A missing artifact is ErrNotFound.
	Get(ctx context.Context, run, step, name string) (io.ReadCloser, error)
	// List returns the artifacts of run, ordered by step then name.
	List(ctx context.Context, run string) ([]Info, error)
	// Delete removes every artifact of run; a run without any is no error.
	Delete(ctx context.Context, run string) error
}

// Info describes a stored artifact.
type Info struct {
	Step string
	Name string // slash-separated, relative to the step's artifacts folder
	Size int64
	Sum  string // SHA-256 of the bytes, lowercase hex
}

// Provider is a store of runs that keeps artifacts too: the PostgreSQL
// store (--artifacts postgres) keeps them in the deployment's database.
type Provider interface {
	Artifacts() Store
}

var (
	// ErrNotFound is the error of Get for an artifact the store lacks.
	ErrNotFound = errors.New("artifact not found")
	// ErrChecksum says that the bytes read back differ from those put.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrTooLarge says that an artifact is over a backend's limit.
	ErrTooLarge = errors.New("artifact too large")
	// ErrName says that a run, step or artifact name is not one a store
	// accepts.
	ErrName = errors.New("invalid artifact name")
)

// CheckKey returns an error matching ErrName unless run and step are
// plain identifiers (letters, digits, _ and -, as run and step ids are)
// and name a slash-separated relative path without empty, "." or ".."
// elements: every backend lays artifacts out as run/step/name, and none
// may write or read outside it.
func CheckKey(run, step, name string) error {
	if err := CheckRun(run); err != nil {
		return err
	}
	if !plain(step) {
		return fmt.Errorf("%w: step %q: want letters, digits, _ and -", ErrName, step)
	}
	if name == "." || !fs.ValidPath(name) || strings.ContainsAny(name, "\x00\\") {
		return fmt.Errorf("%w: %q: want a relative path with / between its folders, without . or .. elements", ErrName, name)
	}
	return nil
}

// CheckRun is CheckKey for the calls that take a run alone.
func CheckRun(run string) error {
	if !plain(run) {
		return fmt.Errorf("%w: run %q: want letters, digits, _ and -", ErrName, run)
	}
	return nil
}

func plain(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Sum returns the SHA-256 of the size bytes of r from its current
// offset, and seeks back there: for a backend that must send the
// checksum before the bytes.
func Sum(r io.ReadSeeker, size int64) (string, error) {
	start, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if err := copyExactly(h, r, size); err != nil {
		return "", err
	}
	if _, err := r.Seek(start, io.SeekStart); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Copy copies the size bytes of r to w and returns their SHA-256: for a
// backend that hashes as it writes.
func Copy(w io.Writer, r io.Reader, size int64) (string, error) {
	h := sha256.New()
	if err := copyExactly(io.MultiWriter(w, h), r, size); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// copyExactly copies r to w, refusing a reader that holds more or fewer
// than size bytes.
func copyExactly(w io.Writer, r io.Reader, size int64) error {
	n, err := io.Copy(w, io.LimitReader(r, size+1))
	switch {
	case err != nil:
		return err
	case n != size:
		return fmt.Errorf("the reader held %s bytes, not the %d announced", more(n, size), size)
	}
	return nil
}

func more(n, size int64) string {
	if n > size {
		return "more"
	}
	return fmt.Sprint(n)
}

// Verify wraps the body of a stored artifact: reading it to its end
// checks that it holds size bytes whose SHA-256 is sum, else the last
// read fails with an error matching ErrChecksum that names the artifact.
func Verify(body io.ReadCloser, step, name string, size int64, sum string) io.ReadCloser {
	return &verifier{body: body, step: step, name: name, size: size, sum: sum, h: sha256.New()}
}

type verifier struct {
	body       io.ReadCloser
	step, name string
	size       int64
	sum        string
	h          hash.Hash
	n          int64
	err        error // sticky once the end is judged
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.body.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.n > v.size {
		v.err = v.mismatch(fmt.Sprintf("more than the %d bytes stored", v.size))
		return n, v.err
	}
	if err == io.EOF {
		if got := hex.EncodeToString(v.h.Sum(nil)); v.n != v.size {
			v.err = v.mismatch(fmt.Sprintf("%d bytes where %d were stored", v.n, v.size))
		} else if got != v.sum {
			v.err = v.mismatch(fmt.Sprintf("sha256 %s, stored %s", got, v.sum))
		} else {
			v.err = io.EOF
		}
		return n, v.err
	}
	return n, err
}

func (v *verifier) mismatch(what string) error {
	return fmt.Errorf("artifact %s/%s: %w: read %s; the stored copy is damaged (run the routine again to make it anew)", v.step, v.name, ErrChecksum, what)
}

func (v *verifier) Close() error { return v.body.Close() }

// Drivers open the artifact stores of URL schemes beyond local: and
// postgres, which the command line opens itself; main registers s3.
type Drivers map[string]func(ctx context.Context, url string) (Store, error)

// Sort orders infos as List returns them: by step, then name, in byte order.
func Sort(infos []Info) {
	slices.SortFunc(infos, func(a, b Info) int {
		return cmp.Or(strings.Compare(a.Step, b.Step), strings.Compare(a.Name, b.Name))
	})
}

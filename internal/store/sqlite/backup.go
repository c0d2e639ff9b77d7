package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	sqlitedrv "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// A backup is a plain SQLite file, so the sqlite3 shell and any SQLite
// tool read it, and a sidecar FILE.sha256 in the format of sha256sum
// ("<hex>  <name>"), so `sha256sum -c FILE.sha256` checks it without us.
//
// It is written with VACUUM INTO rather than the online backup API: one
// statement reads one snapshot of the store (a read transaction, which in
// WAL mode holds up no writer), where the backup API's page copy starts
// over each time another connection writes between its steps; and the
// copy comes out compact, without the free pages of the live file.
// VACUUM INTO does not sync what it writes: Backup does, before the
// rename that makes the file appear whole.

// checksumExt is the extension of a backup's checksum file.
const checksumExt = ".sha256"

// FileInfo describes a store file: a backup just written, or one checked
// before a restore.
type FileInfo struct {
	File   string `json:"file"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Schema is the file's schema version (its newest migration).
	Schema int `json:"schema"`
	Runs   int `json:"runs"`
	// RunsByState counts the runs in each state.
	RunsByState map[string]int `json:"runs_by_state"`
}

// CorruptError is the error of a store file SQLite finds damaged or not a
// database at all. It says what to do: doctor tells how bad it is, and a
// backup is the way back.
type CorruptError struct {
	File string
	Err  error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%s is damaged (%v): check it with `routines doctor`, and put a backup in place with `routines restore BACKUP` (stop the daemon first; docs/operations.md)", e.File, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// corrupt wraps err in a *CorruptError when SQLite reported a damaged
// file (SQLITE_CORRUPT) or one that is not a database (SQLITE_NOTADB).
func corrupt(file string, err error) error {
	var e *sqlitedrv.Error
	if errors.As(err, &e) {
		switch e.Code() & 0xff {
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return &CorruptError{File: file, Err: err}
		}
	}
	return err
}

// LatestSchema is the schema version this binary writes: its newest
// migration.
func LatestSchema() int {
	ms, err := readMigrations()
	if err != nil {
		panic(err) // the embedded files are checked by every test
	}
	return ms[len(ms)-1].Version
}

// Backup writes a consistent copy of the store file src to dst, with
// dst.sha256 beside it, while other processes (a daemon) go on writing to
// src. dst is replaced whole or not at all.
func Backup(ctx context.Context, src, dst string) (*FileInfo, error) {
	info, err := backup(ctx, src, dst)
	if err != nil {
		return nil, fmt.Errorf("back up %s: %w", src, err)
	}
	return info, nil
}

func backup(ctx context.Context, src, dst string) (*FileInfo, error) {
	if _, err := os.Stat(src); err != nil {
		return nil, err // sql.Open would create an empty store
	}
	if a, err := os.Stat(dst); err == nil {
		if b, _ := os.Stat(src); os.SameFile(a, b) {
			return nil, fmt.Errorf("%s is the store itself: name a file elsewhere", dst)
		}
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return nil, err
	}
	tmp, err := vacuumInto(ctx, abs, dst)
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp) // gone once renamed
	sum, size, err := syncAndHash(tmp)
	if err != nil {
		return nil, err
	}
	info, err := inspect(ctx, tmp)
	if err != nil {
		return nil, err
	}
	info.File, info.Size, info.SHA256 = dst, size, sum
	if err := os.Rename(tmp, dst); err != nil {
		return nil, err
	}
	line := sum + "  " + filepath.Base(dst) + "\n"
	if err := writeFileSync(dst+checksumExt, []byte(line)); err != nil {
		return nil, err
	}
	return info, syncDir(filepath.Dir(dst))
}

// vacuumInto copies the database at abs, as one snapshot, into a new
// private file beside dst and returns its name.
func vacuumInto(ctx context.Context, abs, dst string) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	if err := f.Close(); err != nil {
		return "", errors.Join(err, os.Remove(tmp))
	}
	// Not query_only: SQLite counts writing the copy as a write.
	db, err := sql.Open("sqlite", URI(abs, "_pragma=busy_timeout(10000)"))
	if err != nil {
		return "", errors.Join(err, os.Remove(tmp))
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", tmp); err != nil {
		return "", errors.Join(corrupt(abs, err), os.Remove(tmp))
	}
	return tmp, nil
}

// inspect reads a store file's schema version and its runs, without
// writing anything next to it (immutable: no -wal, no -shm).
func inspect(ctx context.Context, path string) (*FileInfo, error) {
	db, err := openImmutable(path)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	info := &FileInfo{RunsByState: map[string]int{}}
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&info.Schema); err != nil {
		return nil, corrupt(path, fmt.Errorf("read schema version: %w", err))
	}
	if info.Schema == 0 {
		return info, nil // no tables yet
	}
	rows, err := db.QueryContext(ctx, "SELECT state, count(*) FROM runs GROUP BY state ORDER BY state")
	if err != nil {
		return nil, corrupt(path, fmt.Errorf("count runs: %w", err))
	}
	defer rows.Close()
	for rows.Next() {
		var state string
		var n int
		if err := rows.Scan(&state, &n); err != nil {
			return nil, err
		}
		info.RunsByState[state] = n
		info.Runs += n
	}
	return info, corrupt(path, rows.Err())
}

func openImmutable(path string) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", URI(abs, "mode=ro&immutable=1"))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// syncAndHash flushes the file at path to stable storage and returns its
// SHA-256 and size.
func syncAndHash(path string) (string, int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	if err := f.Sync(); err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, f.Close()
}

// writeFileSync writes data to path through a synced temporary file and
// a rename: a reader never finds half of it.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if err := errors.Join(err, f.Close()); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	return os.Rename(tmp, path)
}

// syncDir flushes a directory, so the renames in it survive a power cut.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Restored is what Restore did.
type Restored struct {
	*FileInfo
	// Aside is where the store that was in place went ("" when there
	// was none); its -wal and -shm files, if any, went along with it,
	// named as SQLite looks for them (Aside+"-wal").
	Aside string `json:"aside,omitempty"`
}

// Restore puts the backup file in place of the store at storePath, after
// checking it: its checksum against the backup's .sha256 file, SQLite's
// integrity_check, and a schema this binary knows (an older one is
// migrated at the next open). The store in place, if any, is moved aside
// with its -wal and -shm files, to storePath.before-restore-<now>. No
// process may have the store open: the caller makes sure no daemon runs.
func Restore(ctx context.Context, backupPath, storePath string, now time.Time) (*Restored, error) {
	r, err := restore(ctx, backupPath, storePath, now)
	if err != nil {
		return nil, fmt.Errorf("restore %s: %w", backupPath, err)
	}
	return r, nil
}

func restore(ctx context.Context, backupPath, storePath string, now time.Time) (*Restored, error) {
	want, err := readChecksum(backupPath)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(storePath), 0o700); err != nil {
		return nil, err
	}
	// Every check is of the copy that will be put in place, not of a
	// file that might change between the check and the copy.
	tmp, sum, size, err := copyBeside(backupPath, storePath)
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp) // gone once renamed
	if sum != want {
		return nil, fmt.Errorf("checksum mismatch: the file's sha256 is %s, %s%s says %s: the file changed since it was written (damaged or truncated in transit); use another backup", sum, backupPath, checksumExt, want)
	}
	res, err := check(ctx, tmp, false)
	if err != nil {
		return nil, err
	}
	if len(res.Problems) > 0 {
		return nil, fmt.Errorf("the file is damaged though its checksum matches (it was damaged before it was backed up), integrity_check: %s; use another backup", strings.Join(res.Problems, "; "))
	}
	if res.Schema > res.Latest {
		return nil, fmt.Errorf("the backup was written by a newer routines (schema %d > %d): restore it with that version or a newer one", res.Schema, res.Latest)
	}
	info, err := inspect(ctx, tmp)
	if err != nil {
		return nil, err
	}
	info.File, info.Size, info.SHA256 = backupPath, size, sum

	out := &Restored{FileInfo: info}
	if _, err := os.Stat(storePath); err == nil {
		out.Aside = storePath + ".before-restore-" + now.UTC().Format("20060102T150405Z")
		if err := moveStore(storePath, out.Aside); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.Rename(tmp, storePath); err != nil {
		return nil, err
	}
	return out, syncDir(filepath.Dir(storePath))
}

// readChecksum reads the hex SHA-256 of the backup at path from the file
// beside it.
func readChecksum(path string) (string, error) {
	data, err := os.ReadFile(path + checksumExt)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("no %s%s: restore checks the checksum that routines backup writes beside the file; if you trust the file, write one with `sha256sum %s > %s%s`", path, checksumExt, path, path, checksumExt)
	}
	if err != nil {
		return "", err
	}
	sum, _, _ := strings.Cut(strings.TrimSpace(string(data)), " ")
	if _, err := hex.DecodeString(sum); err != nil || len(sum) != 2*sha256.Size {
		return "", fmt.Errorf("%s%s: want the line sha256sum writes (64 hex digits, two spaces, the file name)", path, checksumExt)
	}
	return strings.ToLower(sum), nil
}

// copyBeside copies the file at src into a new private file in the
// directory of dst, synced, and returns its name, SHA-256 and size.
func copyBeside(src, dst string) (string, string, int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", "", 0, err
	}
	defer in.Close()
	out, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".restore-*")
	if err != nil {
		return "", "", 0, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), in)
	if err == nil {
		err = out.Sync()
	}
	if err := errors.Join(err, out.Close()); err != nil {
		return "", "", 0, errors.Join(err, os.Remove(out.Name()))
	}
	return out.Name(), hex.EncodeToString(h.Sum(nil)), n, nil
}

// moveStore renames a store file and its -wal and -shm files together:
// the committed writes still in the WAL stay with the file they belong
// to, and SQLite finds them there under the new name.
func moveStore(from, to string) error {
	for _, suffix := range []string{"-wal", "-shm"} {
		err := os.Rename(from+suffix, to+suffix)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return os.Rename(from, to)
}

// CheckResult is what Check found in a store file.
type CheckResult struct {
	File string `json:"file"`
	// Check is the check that ran: integrity_check or quick_check.
	Check string `json:"check"`
	// Problems are what it reported; none when the file is sound.
	Problems []string `json:"problems"`
	// Schema is the file's schema version; Latest this binary's.
	Schema int           `json:"schema"`
	Latest int           `json:"latest"`
	Took   time.Duration `json:"took_ns"`
}

// maxProblems bounds what a check reports of a badly damaged file.
const maxProblems = 20

// Check runs SQLite's integrity_check (quick_check when quick: it skips
// the comparison of indexes with their tables, and runs in a fraction of
// the time) on the store file at path, which a daemon may be writing to,
// and reads its schema version.
func Check(ctx context.Context, path string, quick bool) (*CheckResult, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err // sql.Open would create an empty store
	}
	return check(ctx, path, quick)
}

func check(ctx context.Context, path string, quick bool) (*CheckResult, error) {
	res := &CheckResult{File: path, Check: "integrity_check", Latest: LatestSchema()}
	if quick {
		res.Check = "quick_check"
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", URI(abs, readerParams))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	start := time.Now()
	// A file too damaged to read its header or schema is one problem,
	// not a failure of the check.
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&res.Schema); err != nil {
		return res, damaged(res, err)
	}
	rows, err := db.QueryContext(ctx, fmt.Sprintf("PRAGMA %s(%d)", res.Check, maxProblems))
	if err != nil {
		return res, damaged(res, err)
	}
	defer rows.Close()
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return nil, err
		}
		if line != "ok" {
			res.Problems = append(res.Problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return res, damaged(res, err)
	}
	res.Took = time.Since(start)
	return res, nil
}

// damaged records a damaged file's error as its problem; any other error
// is the check's own.
func damaged(res *CheckResult, err error) error {
	var ce *CorruptError
	if errors.As(corrupt(res.File, err), &ce) {
		res.Problems = append(res.Problems, ce.Err.Error())
		return nil
	}
	return err
}

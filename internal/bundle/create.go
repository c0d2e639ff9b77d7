package bundle

import (
	"archive/tar"
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// CreateOptions tune Create.
type CreateOptions struct {
	// Limits bound the bundle; zero fields take the defaults.
	Limits Limits
	// Progress, when set, is called as the files' bytes are read into the
	// archive, with the bytes done so far and the total: first (0, total),
	// last (total, total).
	Progress func(done, total int64)
}

// entry is one file, link or directory of a routine directory to bundle.
type entry struct {
	name   string // slash-separated, relative to the routine directory
	kind   kind
	size   int64
	exec   bool
	target string
}

// Create bundles the routine directory dir as a deterministic tar.gz: the
// entries in the order of a sorted walk, modes reduced to 0644 or 0755
// (files with any execute bit, and directories), times, owners and groups
// zeroed, and no directory that holds nothing bundled (git keeps none), so
// the same files make the same bytes and the same hash. Left out: what
// .gitignore and .routinesignore files ignore (ignore.go), and .routines/
// and .git/ at any depth. A symbolic link is kept, not followed, when it is
// relative and leads to something in the bundle; any other link, a FIFO, a
// socket or a device is refused with an error that names it. So is a
// directory past the limits, naming what takes the room.
func Create(dir string, opts CreateOptions) (*Bundle, error) {
	l := opts.Limits.withDefaults()
	abs, err := filepath.Abs(dir)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs) // the directory named, if a link names it
	}
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	defer root.Close()
	entries, total, err := scan(root, newIgnorer(abs), l)
	if err == nil {
		err = checkTree(entries)
	}
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	data, err := write(root, entries, total, opts.Progress)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	m, err := Inspect(bytes.NewReader(data), l)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w: list what the routine does not need in .routinesignore", dir, err)
	}
	sum := sha256.Sum256(data)
	return &Bundle{Data: data, Hash: hex.EncodeToString(sum[:]), Manifest: m}, nil
}

// scan walks the routine directory, sorted, applying the ignore files and
// the limits, and returns what to bundle and the total size of its files.
func scan(root *os.Root, ig *ignorer, l Limits) ([]entry, int64, error) {
	fsys := root.FS()
	var entries []entry
	var total int64
	tops := usage{}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name == "." {
			ig.add(name, fsys)
			return nil
		}
		if ig.ignored(name, d.IsDir()) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		info, err := d.Info() // of the link, not what it leads to
		if err != nil {
			return err
		}
		e := entry{name: name}
		switch mode := info.Mode(); {
		case mode.IsDir():
			e.kind = kindDir
			ig.add(name, fsys)
		case mode.IsRegular():
			e.kind, e.size, e.exec = kindFile, info.Size(), mode&0o111 != 0
		case mode&fs.ModeSymlink != 0:
			target, err := fs.ReadLink(fsys, name)
			if err != nil {
				return err
			}
			e.kind, e.target = kindLink, filepath.ToSlash(target)
		default:
			return fmt.Errorf("%s: %s cannot be bundled: remove it, or list it in .routinesignore", name, special(mode))
		}
		if e.size > l.MaxFileBytes {
			return fmt.Errorf("%s: %s, past the limit of %s for one file: list it in .routinesignore", name, size(e.size), size(l.MaxFileBytes))
		}
		entries = append(entries, e)
		total += e.size
		tops.add(e)
		switch {
		case total > l.MaxBytes:
			return fmt.Errorf("more than %s of files, the limit; the largest: %s: list what the routine does not need in .routinesignore", size(l.MaxBytes), tops.most(func(u use) int64 { return u.bytes }, size))
		case len(entries) > l.MaxEntries:
			return fmt.Errorf("more than %d files, links and directories, the limit; the most: %s: list what the routine does not need in .routinesignore", l.MaxEntries, tops.most(func(u use) int64 { return u.entries }, func(n int64) string { return fmt.Sprint(n) }))
		}
		return nil
	})
	return keepFilled(entries), total, err
}

// special names a kind of file that is not bundled.
func special(mode fs.FileMode) string {
	switch {
	case mode&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case mode&fs.ModeSocket != 0:
		return "a socket"
	case mode&fs.ModeDevice != 0:
		return "a device file"
	}
	return "an irregular file (" + mode.String() + ")"
}

// keepFilled drops the directories that hold no file or link once the
// ignored are left out, as a git checkout has none.
func keepFilled(entries []entry) []entry {
	filled := map[string]bool{}
	for _, e := range entries {
		if e.kind != kindDir {
			for dir := path.Dir(e.name); dir != "."; dir = path.Dir(dir) {
				filled[dir] = true
			}
		}
	}
	return slices.DeleteFunc(entries, func(e entry) bool { return e.kind == kindDir && !filled[e.name] })
}

// checkTree checks the entries as Extract will: names, and links that are
// relative and lead to something in the bundle.
func checkTree(entries []entry) error {
	t := tree{}
	for _, e := range entries {
		if _, err := t.add(e.name, node{kind: e.kind, target: e.target}); err != nil {
			return fmt.Errorf("%s: %w: change it, or list it in .routinesignore", e.name, err)
		}
	}
	if name, err := t.resolveLinks(false); err != nil {
		return fmt.Errorf("%s: %w: make it a relative link to something in the directory, or list it in .routinesignore", name, err)
	}
	return nil
}

// usage is the room taken by each name at the top of the routine
// directory, for the limit errors to say what to leave out.
type usage map[string]*use

type use struct{ entries, bytes int64 }

func (u usage) add(e entry) {
	top, _, below := strings.Cut(e.name, "/")
	if below || e.kind == kindDir {
		top += "/"
	}
	if u[top] == nil {
		u[top] = &use{}
	}
	u[top].entries++
	u[top].bytes += e.size
}

// most lists the three names taking the most by the measure of.
func (u usage) most(of func(use) int64, format func(int64) string) string {
	names := make([]string, 0, len(u))
	for name := range u {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(of(*u[b]), of(*u[a])), strings.Compare(a, b))
	})
	var parts []string
	for _, name := range names[:min(3, len(names))] {
		parts = append(parts, fmt.Sprintf("%s (%s)", name, format(of(*u[name]))))
	}
	return strings.Join(parts, ", ")
}

// write makes the archive of the entries, reading the files through root.
func write(root *os.Root, entries []entry, total int64, progress func(done, total int64)) ([]byte, error) {
	var buf bytes.Buffer
	gz, err := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(gz)
	p := &progressReader{total: total, report: progress}
	p.tell()
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		switch e.kind {
		case kindDir:
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, e.name+"/", 0o755
		case kindLink:
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, e.target, 0o777
		case kindFile:
			hdr.Typeflag, hdr.Size, hdr.Mode = tar.TypeReg, e.size, 0o644
			if e.exec {
				hdr.Mode = 0o755
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("%s: %w", e.name, err)
		}
		if e.kind == kindFile {
			if err := copyFile(tw, root, e, p); err != nil {
				return nil, fmt.Errorf("%s: %w", e.name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// copyFile copies the file e into the archive, checking it is still the
// regular file of the size the walk saw.
func copyFile(w io.Writer, root *os.Root, e entry, p *progressReader) error {
	f, err := root.OpenFile(e.name, os.O_RDONLY|noFollow, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() || info.Size() != e.size {
		return fmt.Errorf("changed while it was bundled: push again")
	}
	p.r = f
	if _, err := io.CopyN(w, p, e.size); err != nil {
		return fmt.Errorf("changed while it was bundled (%w): push again", err)
	}
	return nil
}

// progressReader reports the bytes read through it to Create's Progress.
type progressReader struct {
	r           io.Reader
	done, total int64
	report      func(done, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.done += int64(n)
		p.tell()
	}
	return n, err
}

func (p *progressReader) tell() {
	if p.report != nil {
		p.report(p.done, p.total)
	}
}

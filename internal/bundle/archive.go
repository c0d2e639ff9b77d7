package bundle

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// sink receives the entries of an archive that passed every check: the
// directories and files in archive order (a directory before what is in
// it), then the links, once the whole tree is known and each was found to
// lead inside it. Nothing reaches a sink that could make a later entry land
// through a link.
type sink interface {
	dir(name string) error
	// file reads the size bytes of the file's content from r.
	file(name string, exec bool, size int64, r io.Reader) error
	link(name, target string) error
}

// maxTrailer bounds what may follow the end of the tar stream inside the
// gzip stream: tar pads its last record with zeros (GNU tar to 10 KiB).
const maxTrailer = 64 << 10

// Inspect reads an archive as Extract does, with the same checks and
// limits, and returns its manifest (sorted by path) without writing
// anything. Create inspects what it made, so it never makes what Extract
// would refuse.
func Inspect(r io.Reader, limits Limits) (Manifest, error) {
	var m manifestSink
	if err := readArchive(r, limits, &m); err != nil {
		return Manifest{}, err
	}
	m.sort()
	return m.Manifest, nil
}

// readArchive reads the tar.gz r as hostile data, checking each entry
// before any of its bytes reach s.
func readArchive(r io.Reader, limits Limits, s sink) error {
	l := limits.withDefaults()
	in := &counter{r: r}
	gz, err := gzip.NewReader(in)
	if err != nil {
		return fmt.Errorf("not a tar.gz bundle: %w", err)
	}
	gz.Multistream(false)
	out := &inflation{r: gz, in: in, limits: l}
	tr := tar.NewReader(out)
	t := tree{}
	var links []string
	var total int64
	last := "the start"
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("after %s: %w", last, err)
		}
		name := hdr.Name
		if hdr.Typeflag == tar.TypeDir {
			name = strings.TrimSuffix(name, "/")
		}
		last = fmt.Sprintf("entry %q", name)
		n, err := entryNode(hdr, l, total)
		if err == nil {
			err = addEntry(t, name, n, l, s)
		}
		if err == nil {
			switch n.kind {
			case kindFile:
				total += hdr.Size
				err = s.file(name, hdr.Mode&0o111 != 0, hdr.Size, tr)
			case kindLink:
				links = append(links, name)
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", last, err)
		}
	}
	if name, err := t.resolveLinks(true); err != nil {
		return fmt.Errorf("entry %q: %w", name, err)
	}
	for _, name := range links {
		if err := s.link(name, t[name].target); err != nil {
			return fmt.Errorf("entry %q: %w", name, err)
		}
	}
	// The rest of the gzip stream, for its checksum: tar's padding only.
	if n, err := io.Copy(io.Discard, io.LimitReader(out, maxTrailer+1)); err != nil {
		return fmt.Errorf("after the last entry: %w", err)
	} else if n > maxTrailer {
		return errors.New("after the last entry: data past the end of the archive")
	}
	return nil
}

// entryNode judges an entry's header: its type, and for a file its size
// against the limits given the bytes of the files before it.
func entryNode(hdr *tar.Header, l Limits, total int64) (node, error) {
	switch hdr.Typeflag {
	case tar.TypeDir:
		return node{kind: kindDir}, nil
	case tar.TypeSymlink:
		return node{kind: kindLink, target: hdr.Linkname}, nil
	case tar.TypeReg:
		switch {
		case hdr.Size < 0:
			return node{}, errors.New("a file of negative size")
		case hdr.Size > l.MaxFileBytes:
			return node{}, fmt.Errorf("a file of %s, past the limit of %s for one file", size(hdr.Size), size(l.MaxFileBytes))
		case total+hdr.Size > l.MaxBytes:
			return node{}, fmt.Errorf("the files pass the limit of %s in all", size(l.MaxBytes))
		}
		return node{kind: kindFile}, nil
	case tar.TypeLink:
		return node{}, fmt.Errorf("a hard link (to %q): only files, directories and symbolic links are taken", hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock:
		return node{}, errors.New("a device file: only files, directories and symbolic links are taken")
	case tar.TypeFifo:
		return node{}, errors.New("a FIFO: only files, directories and symbolic links are taken")
	}
	return node{}, fmt.Errorf("an entry of tar type %q: only files, directories and symbolic links are taken", hdr.Typeflag)
}

// addEntry adds an entry to the tree within the entry limit and gives s
// the directories it makes.
func addEntry(t tree, name string, n node, l Limits, s sink) error {
	made, err := t.add(name, n)
	if err != nil {
		return err
	}
	if len(t) > l.MaxEntries {
		return fmt.Errorf("past the limit of %d files, links and directories", l.MaxEntries)
	}
	for _, dir := range made {
		if err := s.dir(dir); err != nil {
			return err
		}
	}
	return nil
}

// counter counts the bytes read through it.
type counter struct {
	r io.Reader
	n int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// errInflation is the error of an archive that expands past its limits.
var errInflation = errors.New("the archive expands")

// inflation reads the decompressed tar stream and stops it once it
// expands past the limits: more than MaxRatio times the compressed bytes
// read (past the first MiB), or more than the files and headers within
// the limits can take. It counts headers and padding too, which no size
// field bounds.
type inflation struct {
	r      io.Reader
	in     *counter
	n      int64
	limits Limits
}

func (f *inflation) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	f.n += int64(n)
	switch {
	case f.n > ratioFloor && f.n > f.limits.MaxRatio*f.in.n:
		return n, fmt.Errorf("%w over %d times its compressed size, past the limit of %d", errInflation, f.n/max(f.in.n, 1), f.limits.MaxRatio)
	case f.n > f.limits.maxStreamBytes():
		return n, fmt.Errorf("%w past %s, more than files within the limits take", errInflation, size(f.limits.maxStreamBytes()))
	}
	return n, err
}

// manifestSink makes the manifest of an archive.
type manifestSink struct{ Manifest }

func (m *manifestSink) dir(string) error { return nil }

func (m *manifestSink) file(name string, exec bool, size int64, r io.Reader) error {
	h := sha256.New()
	if _, err := io.CopyN(h, r, size); err != nil {
		return err
	}
	m.Files = append(m.Files, File{Path: name, Size: size, SHA256: hex.EncodeToString(h.Sum(nil)), Exec: exec})
	m.Size += size
	return nil
}

func (m *manifestSink) link(name, target string) error {
	m.Files = append(m.Files, File{Path: name, Link: target})
	return nil
}

func (m *manifestSink) sort() {
	slices.SortFunc(m.Files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
}

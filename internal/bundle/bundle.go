// Package bundle owns the routine bundle of remote mode: the tar.gz that
// `routines push` makes of a routine directory (Create), the reading of one
// as hostile data (Inspect, Extract), and the cache of extracted bundles a
// worker keeps by content hash (Cache).
//
// A bundle is deterministic: the same files give the same bytes, whatever
// the order they were written in, their times, owners or umask, so the
// sha256 of the archive is the revision's identity and pushing identical
// content twice is recognised. The archive holds only regular files,
// directories and relative symbolic links that resolve inside it; modes are
// reduced to "executable or not".
//
// Extraction trusts nothing in the archive. It refuses absolute and
// climbing names, names that are not clean, paths through a link or a file,
// links that leave the tree, hard links, device files, FIFOs, duplicates
// and archives past the size, count or compression-ratio limits; it writes
// into a temporary sibling of the destination, never through a link, and
// renames the finished, read-only tree into place.
package bundle

import (
	"encoding/hex"
	"fmt"
)

// ShortLen is how many hex digits of a bundle's hash are shown as its
// revision id (48 bits: a collision between the revisions of one routine
// would take some 16 million pushes). The full hash is what is stored,
// fetched and verified.
const ShortLen = 12

// Bundle is a routine directory made into an archive by Create.
type Bundle struct {
	// Data is the tar.gz archive.
	Data []byte
	// Hash is the lowercase hex sha256 of Data: the revision's identity.
	Hash string
	// Manifest lists what Data holds.
	Manifest Manifest
}

// ID returns the revision id shown to people: the first ShortLen digits of
// the hash.
func (b *Bundle) ID() string { return Short(b.Hash) }

// Short returns the revision id of a full hash: its first ShortLen digits.
func Short(hash string) string {
	if len(hash) > ShortLen {
		return hash[:ShortLen]
	}
	return hash
}

// Manifest lists the files and links of a bundle in archive order, for
// showing and diffing revisions without extracting them. Directories are
// left out: they are implied by the paths.
type Manifest struct {
	Files []File `json:"files"`
	// Size is the total size of the files, in bytes.
	Size int64 `json:"size"`
}

// File is one regular file or symbolic link of a bundle.
type File struct {
	// Path is slash-separated, relative to the routine directory.
	Path string `json:"path"`
	// Size and SHA256 (lowercase hex) describe a regular file's content.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
	// Exec tells an executable file (mode 0755 rather than 0644).
	Exec bool `json:"exec,omitempty"`
	// Link is the target of a symbolic link; empty for a regular file.
	Link string `json:"link,omitempty"`
}

// checkHash refuses anything but a full lowercase hex sha256, so a hash can
// name a file in the cache without naming any other path.
func checkHash(hash string) error {
	if len(hash) != hex.EncodedLen(32) {
		return fmt.Errorf("bundle hash %q: want the 64 hex digits of a sha256", hash)
	}
	for _, c := range []byte(hash) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("bundle hash %q: want the 64 lowercase hex digits of a sha256", hash)
		}
	}
	return nil
}

package bundle

import (
	"fmt"
	"strconv"
)

// The default limits: a routine directory is scripts and small data; what
// is larger belongs in an artifact store or a download at run time.
const (
	DefaultMaxBytes     = 100 << 20
	DefaultMaxFileBytes = DefaultMaxBytes
	DefaultMaxEntries   = 10_000
	DefaultMaxRatio     = 200
)

// ratioFloor is how much an archive may expand before its compression ratio
// is judged: a small bundle of repetitive text legitimately compresses far.
const ratioFloor = 1 << 20

// Limits bound a bundle. Create refuses a directory past them and Extract
// an archive past them, with the same numbers, so what one makes the other
// takes. A zero field takes its default.
type Limits struct {
	// MaxBytes bounds the total size of the files.
	MaxBytes int64
	// MaxFileBytes bounds the size of one file.
	MaxFileBytes int64
	// MaxEntries bounds the number of files, links and directories.
	MaxEntries int
	// MaxRatio bounds how many times the archive expands (its tar stream
	// over its compressed bytes), judged once it has expanded past 1 MiB:
	// a few kilobytes of gzip cannot make the reader inflate a gigabyte of
	// headers or zeros.
	MaxRatio int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = DefaultMaxFileBytes
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxRatio <= 0 {
		l.MaxRatio = DefaultMaxRatio
	}
	return l
}

// maxStreamBytes bounds the tar stream of an archive within the limits:
// the files, up to 8 KiB of headers and padding per entry (a name of
// maxName bytes takes a PAX header of its own), and the end of the archive.
func (l Limits) maxStreamBytes() int64 {
	return l.MaxBytes + int64(l.MaxEntries)*8<<10 + 1<<20
}

// maxArchiveBytes bounds the compressed size of an archive within the
// limits (gzip grows what it cannot compress by far less than 1/64): a
// fetch past it is not a bundle Create could make.
func (l Limits) maxArchiveBytes() int64 {
	return l.maxStreamBytes() + l.maxStreamBytes()/64
}

// size formats a byte count for messages: whole MiB or KiB when exact,
// else bytes.
func size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	default:
		return strconv.FormatInt(n, 10) + " bytes"
	}
}

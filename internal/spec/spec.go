package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/routines-dev/routines/internal/routine"
)

// FileNames are the names Load looks for in a directory, in order.
var FileNames = []string{"routine.yaml", "routine.yml"}

// Load reads and validates a routine. path is a routine file or a directory
// holding one of FileNames. Problems of the file are returned as an *Error
// whose File is path as given; failing to read it is a plain error.
func Load(path string) (*routine.Routine, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load routine: %w", err)
	}
	file := path
	if fi.IsDir() {
		file = ""
		for _, name := range FileNames {
			if _, err := os.Stat(filepath.Join(path, name)); err == nil {
				file = filepath.Join(path, name)
				break
			}
		}
		if file == "" {
			return nil, fmt.Errorf("load routine: no %s in %s: %w", FileNames[0], path, fs.ErrNotExist)
		}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("load routine: %w", err)
	}
	dir, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		return nil, fmt.Errorf("load routine: %w", err)
	}
	return Parse(file, data, dir)
}

// Parse decodes and validates the routine file data. file names it in
// problems; dir is the routine directory, where scripts are looked for
// ("" skips the checks that read the file system). The result has its
// defaults applied and File, Dir, Revision and Warnings set.
func Parse(file string, data []byte, dir string) (*routine.Routine, error) {
	return parse(file, data, dir, runtime.NumCPU())
}

func parse(file string, data []byte, dir string, cpus int) (*routine.Routine, error) {
	src := &source{file: file, data: data}
	r := &routine.Routine{}
	if doc := decode(src, r); doc != nil {
		validate(doc, r, dir)
	}
	if err := src.err(); err != nil {
		return nil, err
	}
	applyDefaults(r, cpus)
	sum := sha256.Sum256(data)
	r.File, r.Dir, r.Revision = file, dir, hex.EncodeToString(sum[:])
	if len(src.warnings) > 0 {
		r.Warnings = inOrder(src.warnings)
	}
	return r, nil
}

// Problems returns the problems of an error returned by Load or Parse, or
// nil when err is not about the content of the file.
func Problems(err error) []Problem {
	var e *Error
	if errors.As(err, &e) {
		return e.Problems
	}
	return nil
}

package bundle

import (
	"bytes"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ignoreFiles are read in every directory of a routine, in this order: a
// pattern of .routinesignore overrides one of .gitignore in the same
// directory, so it can put back (!dist/) what git leaves out.
var ignoreFiles = []string{".gitignore", ".routinesignore"}

// leftOut names what is never bundled, at any depth: the state of a
// project (its store, vault and locks) and git's.
var leftOut = map[string]bool{".routines": true, ".git": true}

// pattern is one line of an ignore file, as git reads it.
type pattern struct {
	glob     string
	negate   bool // "!": puts back what an earlier pattern left out
	dirOnly  bool // a trailing "/": matches directories only
	basename bool // no slash but a trailing one: matches the name at any depth
}

// parsePatterns reads an ignore file as git does: a UTF-8 byte-order mark
// and CRs before LFs are dropped, "#" starts a comment, unescaped trailing
// spaces go, "!" negates, a trailing "/" means directories only, and a
// pattern with another slash is anchored to the file's directory.
func parsePatterns(data []byte) []pattern {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var ps []pattern
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" || line[0] == '#' {
			continue
		}
		line = trimTrailingSpaces(line)
		var p pattern
		if strings.HasPrefix(line, "!") {
			p.negate, line = true, line[1:]
		}
		if strings.HasSuffix(line, "/") {
			p.dirOnly, line = true, line[:len(line)-1]
		}
		p.basename = !strings.Contains(line, "/")
		p.glob = strings.TrimPrefix(line, "/")
		if p.glob != "" {
			ps = append(ps, p)
		}
	}
	return ps
}

// trimTrailingSpaces drops the spaces ending line unless a backslash
// escapes them (git's trim_trailing_spaces).
func trimTrailingSpaces(line string) string {
	lastSpace := -1
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case ' ':
			if lastSpace < 0 {
				lastSpace = i
			}
		case '\\':
			i++
			if i == len(line) {
				return line
			}
			lastSpace = -1
		default:
			lastSpace = -1
		}
	}
	if lastSpace >= 0 {
		return line[:lastSpace]
	}
	return line
}

func (p pattern) match(rel string, isDir bool) bool {
	if p.dirOnly && !isDir {
		return false
	}
	if p.basename {
		rel = path.Base(rel)
	}
	return wildmatch(p.glob, rel)
}

// ruleSet is the patterns of the ignore files of one directory.
type ruleSet struct {
	// prefix goes before a path relative to the directory to make it
	// relative to the ignore files': empty in the tree, the routine
	// directory's own path for the .gitignore of a directory above it.
	prefix   string
	patterns []pattern
}

// decide tells whether the set ignores rel (relative to its directory, after
// the prefix): the last pattern that matches decides; found is false when
// none does.
func (s *ruleSet) decide(rel string, isDir bool) (ignored, found bool) {
	rel = s.prefix + rel
	for i := len(s.patterns) - 1; i >= 0; i-- {
		if p := s.patterns[i]; p.match(rel, isDir) {
			return !p.negate, true
		}
	}
	return false, false
}

// ignorer applies the ignore files of a routine directory with git's
// precedence: the deepest directory's patterns first, up to the routine
// directory, then the .gitignore files above it up to the root of its git
// checkout, as git would apply them to the same files. A directory it
// ignores is not entered, so, as in git, nothing below it can be put back.
type ignorer struct {
	dirs  map[string]*ruleSet // by directory, relative to the routine directory ("." for itself)
	above []*ruleSet          // the checkout's .gitignore files above it, nearest first
}

// newIgnorer reads the .gitignore files above dir (absolute) up to the root
// of the git checkout holding it; outside a checkout there are none.
func newIgnorer(dir string) *ignorer {
	ig := &ignorer{dirs: map[string]*ruleSet{}}
	if isCheckout(dir) {
		return ig
	}
	var above []*ruleSet
	for child, parent := dir, filepath.Dir(dir); parent != child; child, parent = parent, filepath.Dir(parent) {
		rel, err := filepath.Rel(parent, dir)
		if err != nil {
			return ig
		}
		if data, err := readRegular(os.DirFS(parent), ".gitignore"); err == nil {
			if ps := parsePatterns(data); len(ps) > 0 {
				above = append(above, &ruleSet{prefix: filepath.ToSlash(rel) + "/", patterns: ps})
			}
		}
		if isCheckout(parent) {
			ig.above = above
			return ig
		}
	}
	return ig // not in a checkout: git would read none of them
}

// isCheckout reports whether dir is the top of a git work tree (its .git is
// a directory, or a file in a submodule or a linked work tree).
func isCheckout(dir string) bool {
	_, err := os.Lstat(filepath.Join(dir, ".git"))
	return err == nil
}

// readRegular reads an ignore file that is a regular file, not a link: git
// has not followed links to ignore files since 2.32, and neither does this.
func readRegular(fsys fs.FS, name string) ([]byte, error) {
	info, err := fs.Lstat(fsys, name)
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fs.ErrNotExist
	}
	return fs.ReadFile(fsys, name)
}

// add records the patterns of the ignore files of directory dir of fsys
// (the routine directory; "." for itself).
func (ig *ignorer) add(dir string, fsys fs.FS) {
	set := &ruleSet{}
	for _, name := range ignoreFiles {
		if data, err := readRegular(fsys, path.Join(dir, name)); err == nil {
			set.patterns = append(set.patterns, parsePatterns(data)...)
		}
	}
	if len(set.patterns) > 0 {
		ig.dirs[dir] = set
	}
}

// ignored tells whether the ignore files leave out rel (slash-separated,
// relative to the routine directory), whose parent directories are not
// ignored.
func (ig *ignorer) ignored(rel string, isDir bool) bool {
	if leftOut[path.Base(rel)] {
		return true
	}
	for dir := path.Dir(rel); ; dir = path.Dir(dir) {
		if set := ig.dirs[dir]; set != nil {
			sub := rel
			if dir != "." {
				sub = rel[len(dir)+1:]
			}
			if ignored, found := set.decide(sub, isDir); found {
				return ignored
			}
		}
		if dir == "." {
			break
		}
	}
	for _, set := range ig.above {
		if ignored, found := set.decide(rel, isDir); found {
			return ignored
		}
	}
	return false
}

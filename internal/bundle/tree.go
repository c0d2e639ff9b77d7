package bundle

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// tree is the shape of a bundle as its entries arrive, by slash-separated
// path relative to its top (which is not in it). Create and the archive
// reader check every entry against it, so both refuse the same things and
// the reader never has to ask the file system what a path is.
type tree map[string]node

type kind uint8

const (
	kindDir kind = iota + 1
	kindFile
	kindLink
)

type node struct {
	kind     kind
	target   string // of a link
	implicit bool   // a directory made for an entry below it, not one of its own
}

// maxName bounds a path, as Linux's PATH_MAX (with its NUL) does.
const maxName = 4095

// maxHops bounds the links followed to resolve one path, as the kernel's
// 40 does.
const maxHops = 40

// checkName refuses a name that is not a clean relative path: empty,
// absolute, with "." or ".." elements, empty elements, a NUL or a
// backslash (a separator on Windows).
func checkName(name string) error {
	switch {
	case name == "" || name == ".":
		return errors.New("an empty name")
	case len(name) > maxName:
		return fmt.Errorf("a name longer than %d bytes", maxName)
	case strings.ContainsRune(name, 0):
		return errors.New("a name with a NUL byte")
	case strings.HasPrefix(name, "/"):
		return errors.New("an absolute path")
	case strings.ContainsRune(name, '\\'):
		return errors.New("a name with a backslash (a separator on Windows)")
	case hasElem(name, ".."):
		return errors.New("a path with \"..\"")
	case !fs.ValidPath(name):
		return errors.New("a path that is not clean (\".\" or empty elements)")
	}
	return nil
}

// hasElem reports whether one element of the slash-separated name is elem.
func hasElem(name, elem string) bool {
	for e := range strings.SplitSeq(name, "/") {
		if e == elem {
			return true
		}
	}
	return false
}

// add records the entry name after checking it: it is new, and every
// directory above it is a directory, not a link (a write through a link
// could land anywhere) nor a file. It returns the directories to create,
// top first: those above it that no entry made yet (recorded as implicit)
// and the entry itself when it is a new directory.
func (t tree) add(name string, n node) (made []string, err error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	for i := 0; i < len(name); i++ {
		if name[i] != '/' {
			continue
		}
		dir := name[:i]
		switch p, ok := t[dir]; {
		case !ok:
			t[dir] = node{kind: kindDir, implicit: true}
			made = append(made, dir)
		case p.kind == kindLink:
			return nil, fmt.Errorf("a path through the symbolic link %s", dir)
		case p.kind == kindFile:
			return nil, fmt.Errorf("a path through the file %s", dir)
		}
	}
	if old, ok := t[name]; ok {
		if old.kind == kindDir && old.implicit && n.kind == kindDir {
			t[name] = n
			return made, nil
		}
		return nil, errors.New("a second entry of the same name")
	}
	if n.kind == kindLink {
		if err := checkTarget(name, n.target); err != nil {
			return nil, err
		}
	}
	t[name] = n
	if n.kind == kindDir {
		made = append(made, name)
	}
	return made, nil
}

// checkTarget refuses what a link's target can be judged on alone: an
// absolute target, or one that climbs out of the tree by its names. Where
// it really leads is known when the whole tree is (resolveLinks).
func checkTarget(name, target string) error {
	joined := path.Join(path.Dir(name), target)
	switch {
	case target == "":
		return errors.New("a symbolic link with an empty target")
	case strings.ContainsRune(target, 0):
		return errors.New("a symbolic link whose target has a NUL byte")
	case strings.HasPrefix(target, "/") || strings.ContainsRune(target, '\\'):
		return fmt.Errorf("a symbolic link to the absolute path %q (only relative links inside the directory are kept)", target)
	case joined == ".." || strings.HasPrefix(joined, "../"):
		return fmt.Errorf("a symbolic link to %q, outside the directory", target)
	}
	return nil
}

// resolveLinks checks where each link of the complete tree leads, through
// the other links, as the kernel would resolve it: never out of the tree,
// never through a file, not in a loop. A target missing from the tree
// (dangling) is allowed when dangling is true; no ".." may follow a name
// that is missing, since what it would climb out of is unknown. It returns
// the offending link's name with the error.
func (t tree) resolveLinks(dangling bool) (string, error) {
	var links []string
	for name, n := range t {
		if n.kind == kindLink {
			links = append(links, name)
		}
	}
	slices.Sort(links) // the first offender, whatever the map's order
	for _, name := range links {
		target := t[name].target
		hops := 0
		_, found, err := t.resolve(path.Dir(name), target, &hops)
		if err == nil && !found && !dangling {
			err = errors.New("which is not in the bundle (missing, or ignored)")
		}
		if err != nil {
			return name, fmt.Errorf("a symbolic link to %q, %w", target, err)
		}
	}
	return "", nil
}

// resolve follows target from the directory dir ("." for the top) and
// returns where it leads; found is false when a name on the way is not in
// the tree. Its errors say why the link is refused, for resolveLinks to
// name the link.
func (t tree) resolve(dir, target string, hops *int) (res string, found bool, err error) {
	var at []string
	if dir != "." {
		at = strings.Split(dir, "/")
	}
	found = true
	elems := strings.Split(target, "/")
	for i, e := range elems {
		switch {
		case e == "" || e == ".":
			continue
		case e == "..":
			if !found {
				return "", false, fmt.Errorf("which climbs out of %s, not in the bundle", strings.Join(at, "/"))
			}
			if len(at) == 0 {
				return "", false, errors.New("which leads outside the directory")
			}
			at = at[:len(at)-1]
			continue
		case !found:
			at = append(at, e)
			continue
		}
		p := strings.Join(append(at, e), "/")
		n, ok := t[p]
		switch {
		case !ok:
			found = false
			at = append(at, e)
		case n.kind == kindLink:
			if *hops++; *hops > maxHops {
				return "", false, fmt.Errorf("which loops (more than %d links to follow)", maxHops)
			}
			r, ok, err := t.resolve(path.Dir(p), n.target, hops)
			if err != nil {
				return "", false, err
			}
			at, found = nil, ok
			if r != "." {
				at = strings.Split(r, "/")
			}
		case n.kind == kindFile && i < len(elems)-1:
			return "", false, fmt.Errorf("which goes through the file %s", p)
		default:
			at = append(at, e)
		}
	}
	if len(at) == 0 {
		return ".", found, nil
	}
	return strings.Join(at, "/"), found, nil
}

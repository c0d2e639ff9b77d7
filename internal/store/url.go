package store

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Opener opens the store a URL of its driver's scheme names.
type Opener func(ctx context.Context, url string) (Store, error)

// Drivers maps URL schemes to the drivers that open them. main builds it,
// so that a binary carries the drivers it was built with.
type Drivers map[string]Opener

// Open opens the store u names, with the driver of its scheme:
// sqlite:PATH (the embedded default; PATH relative to the working
// directory, or sqlite:///abs/path), postgres://… or postgresql://….
// An unknown scheme is an error that lists the known ones.
func (d Drivers) Open(ctx context.Context, u string) (Store, error) {
	scheme, _, ok := strings.Cut(u, ":")
	if !ok || scheme == "" {
		return nil, fmt.Errorf("store URL %q: want SCHEME:…, such as %s", Redact(u), d.examples())
	}
	open, ok := d[strings.ToLower(scheme)]
	if !ok {
		return nil, fmt.Errorf("store URL %q: no driver for %s: in this binary; want %s", Redact(u), scheme, d.examples())
	}
	return open(ctx, u)
}

func (d Drivers) examples() string {
	var ex []string
	for scheme := range d {
		switch scheme {
		case "sqlite":
			ex = append(ex, "sqlite:./state.db")
		case "postgres":
			ex = append(ex, "postgres://user@host:5432/routines")
		}
	}
	slices.Sort(ex)
	if len(ex) == 0 {
		return "a scheme this binary has a driver for"
	}
	return strings.Join(ex, " or ")
}

// SQLitePath returns the file a sqlite: URL names: sqlite:PATH,
// sqlite://PATH or sqlite:///ABS, without its query.
func SQLitePath(u string) (string, error) {
	rest, ok := strings.CutPrefix(u, "sqlite:")
	if !ok {
		return "", fmt.Errorf("store URL %q: want sqlite:PATH", u)
	}
	rest, _, _ = strings.Cut(rest, "?")
	rest = strings.TrimPrefix(rest, "//")
	if rest == "" {
		return "", fmt.Errorf("store URL %q: no file; want sqlite:PATH, such as sqlite:./state.db", u)
	}
	return rest, nil
}

// SQLiteURL is the URL of the SQLite store in the file at path.
func SQLiteURL(path string) string { return "sqlite:" + path }

// Redact returns u with its password, if any, replaced by xxxxx, for
// messages and logs.
func Redact(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.User == nil {
		return u
	}
	return p.Redacted()
}

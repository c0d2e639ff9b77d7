package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/client"
)

// profileEnv selects a profile, as --profile does.
const profileEnv = "ROUTINES_PROFILE"

// defaultProfile is the profile login and logout act on unless told.
const defaultProfile = "default"

// profiles is the file `routines login` writes, config.yaml in the
// user's configuration directory: the servers the CLI may act against,
// by profile name. It holds API tokens, so it is kept 0600.
type profiles struct {
	Profiles map[string]*profile `yaml:"profiles"`
}

// profile is one server and the token that opens it.
type profile struct {
	URL   string `yaml:"url"`
	Token string `yaml:"token,omitempty"`
	// CACert is the file of the CA the server's certificate chains to,
	// when it is not one the system trusts (login's --ca-cert).
	CACert string `yaml:"ca_cert,omitempty"`
}

// names lists the profiles, sorted.
func (p *profiles) names() []string {
	return slices.Sorted(maps.Keys(p.Profiles))
}

// unknown is the error of a profile name not in the file at path.
func (p *profiles) unknown(name, path string) error {
	if len(p.Profiles) == 0 {
		return invalidf("no profile %q: no server was logged in to yet (%s has none); log in with: routines login URL --profile %s", name, path, name)
	}
	return invalidf("no profile %q in %s: the profiles are %s (log in with: routines login URL --profile %s)", name, path, strings.Join(p.names(), ", "), name)
}

// userConfigDir is os.UserConfigDir read from the commands' environment
// (tests give theirs): $XDG_CONFIG_HOME or ~/.config on Unix.
func (g *globals) userConfigDir() (string, error) {
	var dir string
	switch runtime.GOOS {
	case "windows":
		if dir = g.getenv("AppData"); dir == "" {
			return "", errors.New("%AppData% is not set")
		}
	case "darwin", "ios":
		if dir = g.getenv("HOME"); dir == "" {
			return "", errors.New("$HOME is not set")
		}
		dir = filepath.Join(dir, "Library", "Application Support")
	default:
		dir = g.getenv("XDG_CONFIG_HOME")
		if dir == "" {
			if dir = g.getenv("HOME"); dir == "" {
				return "", errors.New("neither $XDG_CONFIG_HOME nor $HOME is set")
			}
			dir = filepath.Join(dir, ".config")
		} else if !filepath.IsAbs(dir) {
			return "", fmt.Errorf("$XDG_CONFIG_HOME %q is not an absolute path", dir)
		}
	}
	return dir, nil
}

// profilesPath is where the profiles are kept: routines/config.yaml in
// the user's configuration directory.
func (g *globals) profilesPath() (string, error) {
	dir, err := g.userConfigDir()
	if err != nil {
		return "", invalidf("no configuration directory for the profiles: %v", err)
	}
	return filepath.Join(dir, "routines", "config.yaml"), nil
}

// loadProfiles reads the user's profiles, and returns them with their path.
func (g *globals) loadProfiles() (string, *profiles, error) {
	path, err := g.profilesPath()
	if err != nil {
		return "", nil, err
	}
	ps, err := readProfiles(path)
	return path, ps, err
}

// readProfiles reads the profiles at path; none when the file does not
// exist. It refuses a symbolic link and a file others may read or write
// (it holds tokens), saying how to fix either.
func readProfiles(path string) (*profiles, error) {
	p := &profiles{Profiles: map[string]*profile{}}
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, err
	}
	if err := checkProfilesFile(path, info); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// The parser's error would quote the line at fault: a token, maybe.
	if yaml.Unmarshal(data, p) != nil {
		return nil, invalidf("%s is not a profiles file as routines login writes it: remove it and log in again", path)
	}
	if p.Profiles == nil {
		p.Profiles = map[string]*profile{}
	}
	return p, nil
}

// checkProfilesFile refuses a profiles file that is a symbolic link (whoever
// placed it chooses where tokens are read from and written to) or that
// others may read or write.
func checkProfilesFile(path string, info fs.FileInfo) error {
	if info.Mode()&fs.ModeSymlink != 0 {
		return invalidf("%s is a symbolic link: it holds API tokens, so routines reads and writes it only as a regular file; replace the link with the file it points to", path)
	}
	if !info.Mode().IsRegular() {
		return invalidf("%s is not a regular file: remove it and log in again", path)
	}
	if runtime.GOOS != "windows" && info.Mode().Perm()&0o077 != 0 {
		return invalidf("%s has mode %04o: it holds API tokens, which other users could read; make it private with: chmod 600 %s (and change the tokens if others could read them)",
			path, info.Mode().Perm(), path)
	}
	return nil
}

// writeProfiles replaces the file at path with p: a new file of mode
// 0600 renamed over it, in a directory made 0700, never through a link.
func writeProfiles(path string, p *profiles) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if info, err := os.Lstat(path); err == nil {
		if err := checkProfilesFile(path, info); err != nil {
			return err
		}
	}
	data, err := yaml.Marshal(p)
	if err != nil {
		return err
	}
	data = append([]byte("# Written by routines login: the servers routines acts against with --profile NAME.\n"+
		"# It holds API tokens: keep it private (mode 0600).\n"), data...)
	f, err := os.CreateTemp(filepath.Dir(path), ".config.yaml.*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	// CreateTemp makes it 0600; Chmod says so where the umask could not.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// profileName is the profile selected by --profile, else $ROUTINES_PROFILE;
// "" when none is.
func (g *globals) profileName() string {
	return cmp.Or(g.profile, g.getenv(profileEnv))
}

// remote is the server a command talks to, and its client.
type remote struct {
	name string // the profile's; "" for a server named by URL
	url  string
	c    *client.Client
}

// where names the server in messages.
func (r *remote) where() string { return "server " + r.url }

// selector is how a command names the server again in a hint: its
// profile, or its URL.
func (r *remote) selector() string {
	if r.name == "" {
		return "--server " + r.url
	}
	return "--profile " + r.name
}

// remote returns the server of the selected profile (--profile or
// $ROUTINES_PROFILE), else the one $ROUTINES_SERVER names, or nil when
// neither is: the command then acts on the local project. The client
// sends token when set, else the profile's (for $ROUTINES_SERVER,
// $ROUTINES_TOKEN).
func (g *globals) remote(token string) (*remote, error) {
	name := g.profileName()
	if name == "" {
		if server := g.getenv("ROUTINES_SERVER"); server != "" {
			return g.remoteAt(server, cmp.Or(token, g.getenv("ROUTINES_TOKEN")))
		}
		return nil, nil
	}
	path, ps, err := g.loadProfiles()
	if err != nil {
		return nil, err
	}
	p, ok := ps.Profiles[name]
	if !ok {
		return nil, ps.unknown(name, path)
	}
	g.selected = name
	c, err := g.newClient(p.URL, cmp.Or(token, p.Token), p.CACert, "")
	if err != nil {
		return nil, err
	}
	return &remote{name: name, url: p.URL, c: c}, nil
}

// remoteAt returns the server at the URL server, with token.
func (g *globals) remoteAt(server, token string) (*remote, error) {
	url := strings.TrimRight(server, "/")
	c, err := g.newClient(url, token, "", "")
	if err != nil {
		return nil, err
	}
	return &remote{url: url, c: c}, nil
}

// profileNamePattern is what a profile's name looks like.
var profileNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func newLoginCmd(g *globals) *cobra.Command {
	var token string
	cmd := &cobra.Command{
		Use:   "login URL",
		Short: "Save a server's URL and API token as a profile, after checking that the token opens it",
		Long: "login checks that the daemon or server at URL answers GET /v1/status with the token, then saves\n" +
			"both as a profile (named default unless --profile NAME) in routines/config.yaml of the user's\n" +
			"configuration directory (~/.config, or $XDG_CONFIG_HOME), mode 0600. The token is --token, else\n" +
			"$ROUTINES_TOKEN, else read from stdin (typed without echo at a terminal). Then --profile NAME\n" +
			"(or $" + profileEnv + ") makes runs, show, logs, invoke, emit, status, secrets and dlq act on\n" +
			"that server instead of the local project. Docs: " + docsURL + "/remote.md",
		Args: argsRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.login(cmd.Context(), args[0], token)
		},
	}
	cmd.Flags().StringVar(&token, "token", "", "API token of the server (default $ROUTINES_TOKEN, else read from stdin)")
	return cmd
}

func newLogoutCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Forget a profile saved by login: its URL and token",
		Args:  argsRange(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.logout()
		},
	}
}

// checkServerURL reads the URL of a daemon or server: http or https, a
// host, no credentials, query or fragment; without a trailing /.
func checkServerURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "", invalidf("%s: %v; write the server's URL, such as https://routines.example.com", raw, err)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return "", invalidf("%s: write the server's URL with http:// or https://, such as https://routines.example.com", raw)
	case u.User != nil:
		return "", invalidf("%s: the URL holds credentials; write it without them and give the token with --token, $ROUTINES_TOKEN or on stdin", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "":
		return "", invalidf("%s: write the server's URL without a query or fragment", raw)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// plainRemote reports whether a URL sends the token in clear over a
// network: http to a host that is not loopback.
func plainRemote(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

func (g *globals) login(ctx context.Context, rawURL, token string) error {
	name := cmp.Or(g.profileName(), defaultProfile)
	if !profileNamePattern.MatchString(name) {
		return invalidf("profile name %q: use letters, digits, _, . and -, such as prod", name)
	}
	base, err := checkServerURL(rawURL)
	if err != nil {
		return err
	}
	path, ps, err := g.loadProfiles()
	if err != nil {
		return err
	}
	if token == "" {
		token = g.getenv("ROUTINES_TOKEN")
	}
	if token == "" {
		if token, err = g.readStdin("API token of "+base, 64<<10); err != nil {
			return invalid(err)
		}
		token = strings.TrimSpace(token)
	}
	if plainRemote(base) {
		fmt.Fprintf(g.deps.Stderr, "warning: %s is plain http: the token crosses the network unencrypted; use https unless this network is private\n", base)
	}
	ca := g.caFile("")
	if ca != "" {
		if ca, err = filepath.Abs(ca); err != nil {
			return err
		}
	}
	c, err := g.newClient(base, token, ca, "")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = c.Status(ctx)
	var unreachable *client.UnreachableError
	var apiError *client.APIError
	var certErr *client.CertificateError
	switch {
	case errors.As(err, &certErr):
		return invalid(certErr)
	case errors.As(err, &unreachable):
		return invalidf("nothing answers at %s: %v; check the URL, and that the server is up", base, unreachable.Err)
	case errors.As(err, &apiError) && apiError.Status == http.StatusUnauthorized:
		what := "the token given"
		if token == "" {
			what = "no token"
		}
		return invalidf("%s refused %s (401): pass the token the server was started with, with --token, $ROUTINES_TOKEN or on stdin", base, what)
	case errors.As(err, &apiError):
		return invalidf("%s is not a routines daemon or server, or not at this path: GET /v1/status answered %d %s", base, apiError.Status, http.StatusText(apiError.Status))
	case err != nil:
		return invalidf("%s did not answer as a routines daemon or server: %v", base, err)
	}
	ps.Profiles[name] = &profile{URL: base, Token: token, CACert: ca}
	if err := writeProfiles(path, ps); err != nil {
		return err
	}
	fmt.Fprintf(g.deps.Stdout, "logged in to %s as profile %s (saved in %s)\nact on it with: routines --profile %s COMMAND, or %s=%s\n", base, name, path, name, profileEnv, name)
	return nil
}

func (g *globals) logout() error {
	name := cmp.Or(g.profileName(), defaultProfile)
	path, ps, err := g.loadProfiles()
	if err != nil {
		return err
	}
	p, ok := ps.Profiles[name]
	if !ok {
		return ps.unknown(name, path)
	}
	delete(ps.Profiles, name)
	if err := writeProfiles(path, ps); err != nil {
		return err
	}
	fmt.Fprintf(g.deps.Stdout, "profile %s (%s) removed from %s\n", name, p.URL, path)
	return nil
}

package deploy

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// composeFile is the part of the Compose specification compose.yaml
// uses: decoded strictly, a key outside it (a typo, or a feature these
// checks do not know) fails the test.
type composeFile struct {
	Name     string                    `json:"name"`
	Services map[string]composeService `json:"services"`
	Volumes  map[string]*struct{}      `json:"volumes"`
}

type composeService struct {
	Image       string            `json:"image"`
	Build       *composeBuild     `json:"build"`
	Command     []string          `json:"command"`
	EnvFile     []string          `json:"env_file"`
	Environment map[string]string `json:"environment"`
	Ports       []string          `json:"ports"`
	Volumes     []string          `json:"volumes"`
	DependsOn   map[string]struct {
		Condition string `json:"condition"`
	} `json:"depends_on"`
	Healthcheck *struct {
		Test     []string `json:"test"`
		Interval string   `json:"interval"`
		Timeout  string   `json:"timeout"`
		Retries  int      `json:"retries"`
	} `json:"healthcheck"`
	Restart         string `json:"restart"`
	StopGracePeriod string `json:"stop_grace_period"`
	Deploy          *struct {
		Replicas int `json:"replicas"`
	} `json:"deploy"`
}

type composeBuild struct {
	Context    string `json:"context"`
	Dockerfile string `json:"dockerfile"`
}

// interpolation is a ${VAR}, ${VAR:-default} or ${VAR:?error} of a
// compose file; $$ is a literal $.
var interpolation = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?][^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// TestCompose decodes compose.yaml strictly and checks it against the
// files it names: env files (from their .example), the build context and
// Dockerfile, the volumes and services it refers to; two workers; the
// command lines through the binary's flags; the workers' stop period
// against their drain.
func TestCompose(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Every variable Compose interpolates has a default or an error: the
	// file works with no .env, and says what is missing.
	for _, m := range interpolation.FindAllStringSubmatch(string(data), -1) {
		if m[0] != "$$" && m[2] == "" {
			t.Errorf("compose.yaml: %s has no default (${VAR:-default}) nor error (${VAR:?message}): with it unset, Compose puts an empty string", m[0])
		}
	}
	var c composeFile
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	for _, want := range []string{"postgres", "server", "worker"} {
		if _, ok := c.Services[want]; !ok {
			t.Fatalf("compose.yaml: no service %s", want)
		}
	}
	if len(c.Services) != 3 {
		t.Errorf("compose.yaml: services %v, want postgres, server and worker", keys(c.Services))
	}

	pg := readEnvFile(t, "postgres.env.example")
	var image string
	for name, s := range c.Services {
		for _, f := range s.EnvFile {
			if _, err := os.Stat(f + ".example"); err != nil {
				t.Errorf("compose.yaml: service %s reads %s, which has no %s.example to make it from", name, f, f)
			}
		}
		if s.Healthcheck == nil || len(s.Healthcheck.Test) == 0 {
			t.Errorf("compose.yaml: service %s has no healthcheck", name)
		}
		for dep := range s.DependsOn {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("compose.yaml: service %s depends on %s, which is no service", name, dep)
			}
			if cond := s.DependsOn[dep].Condition; cond != "service_healthy" {
				t.Errorf("compose.yaml: service %s waits for %s to be %q: want service_healthy", name, dep, cond)
			}
		}
		for _, v := range s.Volumes {
			vol, _, _ := strings.Cut(v, ":")
			if _, ok := c.Volumes[vol]; !ok {
				t.Errorf("compose.yaml: service %s mounts the volume %s, which volumes: does not declare", name, vol)
			}
		}
		if b := s.Build; b != nil {
			if _, err := os.Stat(filepath.Join(b.Context, b.Dockerfile)); err != nil {
				t.Errorf("compose.yaml: service %s builds %s in %s: %v", name, b.Dockerfile, b.Context, err)
			}
			if abs, _ := filepath.Abs(b.Context); abs != must(filepath.Abs(repoRoot)) {
				t.Errorf("compose.yaml: service %s builds in %s, want the top of the repository (..)", name, b.Context)
			}
			image = s.Image
		}
	}
	for _, name := range []string{"server", "worker"} {
		s := c.Services[name]
		if s.Image != image || image == "" {
			t.Errorf("compose.yaml: service %s runs image %q, want the one the server builds (%q)", name, s.Image, image)
		}
		grace := checkCommandLine(t, "compose.yaml: service "+name, s.Command)
		env := map[string]string{}
		for _, f := range s.EnvFile {
			for k, v := range readEnvFile(t, f+".example") {
				env[k] = v
			}
		}
		for _, k := range needEnv {
			if env[k] == "" {
				t.Errorf("compose.yaml: service %s is given no %s (env_file %v)", name, k, s.EnvFile)
			}
		}
		if _, ok := env["POSTGRES_PASSWORD"]; ok {
			t.Errorf("compose.yaml: service %s reads the postgres service's env file", name)
		}
		db, err := url.Parse(env["ROUTINES_DB"])
		if err != nil {
			t.Fatalf("ROUTINES_DB: %v", err)
		}
		pw, _ := db.User.Password()
		if _, ok := c.Services[db.Hostname()]; !ok || db.User.Username() != pg["POSTGRES_USER"] || pw != pg["POSTGRES_PASSWORD"] || db.Path != "/"+pg["POSTGRES_DB"] {
			t.Errorf("compose.yaml: service %s: ROUTINES_DB %s does not name the postgres service with the user, password and database of postgres.env.example", name, db.Redacted())
		}
		if name == "worker" {
			stop, err := time.ParseDuration(s.StopGracePeriod)
			if err != nil {
				t.Errorf("compose.yaml: worker stop_grace_period %q: %v", s.StopGracePeriod, err)
			}
			checkStopWait(t, "compose.yaml: worker", grace, stop)
		}
	}
	if w := c.Services["worker"]; w.Deploy == nil || w.Deploy.Replicas != 2 {
		t.Errorf("compose.yaml: want two workers (deploy.replicas: 2)")
	}
	if pgs := c.Services["postgres"]; !slices.ContainsFunc(pgs.Volumes, func(v string) bool { return strings.HasSuffix(v, ":/var/lib/postgresql/data") }) {
		t.Errorf("compose.yaml: PostgreSQL keeps its data in no volume: %v", pgs.Volumes)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

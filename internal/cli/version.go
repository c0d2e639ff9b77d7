package cli

import (
	"log/slog"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/routines-dev/routines/internal/metrics"
)

// versionString is what --version prints after the name: the version main
// was built with (-ldflags "-X main.version=…"), else the module's from
// the build info; then the VCS revision, its date and whether the tree had
// changes, the Go version and the platform:
//
//	v1.2.0 (rev 9657343, 2026-12-04, modified) go1.26.8 linux/amd64
func versionString(set string, bi *debug.BuildInfo) string {
	v, goVersion := buildVersion(set, bi), runtime.Version()
	var vcs []string
	if bi != nil {
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
		settings := map[string]string{}
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
		if rev := settings["vcs.revision"]; rev != "" {
			vcs = append(vcs, "rev "+rev[:min(7, len(rev))])
		}
		if t, err := time.Parse(time.RFC3339, settings["vcs.time"]); err == nil {
			vcs = append(vcs, t.UTC().Format(time.DateOnly))
		}
		if settings["vcs.modified"] == "true" {
			vcs = append(vcs, "modified")
		}
	}
	if len(vcs) > 0 {
		v += " (" + strings.Join(vcs, ", ") + ")"
	}
	return v + " " + goVersion + " " + runtime.GOOS + "/" + runtime.GOARCH
}

// buildVersion is the version main was built with, else the module's
// from the build info, else devel: the version of routines_build_info.
func buildVersion(set string, bi *debug.BuildInfo) string {
	v := set
	if v == "" && bi != nil {
		v = bi.Main.Version
	}
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	return v
}

// newMetrics returns the metrics of a daemon of this build.
func (g *globals) newMetrics(logger *slog.Logger) *metrics.Metrics {
	return metrics.New(metrics.Config{Version: buildVersion(g.deps.Version, g.deps.Build), Logger: logger})
}

package cli

import (
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// versionString is what --version prints after the name: the version main
// was built with (-ldflags "-X main.version=…"), else the module's from
// the build info; then the VCS revision, its date and whether the tree had
// changes, the Go version and the platform:
//
//	v1.2.0 (rev 9657343, 2026-12-04, modified) go1.26.8 linux/amd64
func versionString(set string, bi *debug.BuildInfo) string {
	v, goVersion := set, runtime.Version()
	var vcs []string
	if bi != nil {
		if v == "" {
			v = bi.Main.Version
		}
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
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	if len(vcs) > 0 {
		v += " (" + strings.Join(vcs, ", ") + ")"
	}
	return v + " " + goVersion + " " + runtime.GOOS + "/" + runtime.GOARCH
}

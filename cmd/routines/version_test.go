//go:build linux

package main

import (
	"runtime"
	"strings"
	"testing"
)

// The binary reports its build: --version reads the build info main
// passes (the test binary has one, without VCS stamps).
func TestVersionFromTheBuildInfo(t *testing.T) {
	t.Parallel()
	if bi := deps().Build; bi == nil || bi.GoVersion != runtime.Version() {
		t.Fatalf("main passes no build info: %v", bi)
	}
	out, err := command("--version").Output()
	want := " " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	if err != nil || !strings.HasPrefix(string(out), "routines ") || !strings.HasSuffix(string(out), want) {
		t.Fatalf("--version: %v %q, want routines … %q", err, out, want)
	}
}

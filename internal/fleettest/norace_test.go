//go:build linux && !race

package fleettest

// raceFlags are none without the race detector.
var raceFlags []string

//go:build linux && race

package fleettest

// raceFlags build the binary with the race detector when the tests run
// with it: its packages are then those the tests compiled already, and
// the daemons' races are found too.
var raceFlags = []string{"-race"}

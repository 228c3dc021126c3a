//go:build race

package testutil

// raceEnabled reports whether this test binary was built with -race.
const raceEnabled = true

//go:build race

package harness

// raceEnabled builds dynup with the race detector when the tests run with it.
const raceEnabled = true

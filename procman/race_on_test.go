//go:build race

package procman_test

// raceEnabled: each child is a race-instrumented Go program, several times
// dearer to start, so the tests that start hundreds scale down.
const raceEnabled = true

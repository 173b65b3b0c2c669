//go:build !race

package procman_test

const raceEnabled = false

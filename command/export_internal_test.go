//go:build linux

package command

// AdoptsLeftovers says that this build finds and ends what a command left
// outside its group (a subreaper's); the portable build on Linux stands
// for macOS, which has none.
const AdoptsLeftovers = adoptsLeftovers

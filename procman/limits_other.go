//go:build !unix

package procman

// setOwnLimits: no child runs here.
func setOwnLimits() error { return nil }

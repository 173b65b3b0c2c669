//go:build unix && !darwin && (!linux || procrastinate_portable)

package procman

// maxRSSUnit is the unit of rusage's ru_maxrss: KiB on Linux and the BSDs.
const maxRSSUnit = 1024

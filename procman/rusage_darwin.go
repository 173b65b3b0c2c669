package procman

// maxRSSUnit is the unit of rusage's ru_maxrss: bytes on macOS.
const maxRSSUnit = 1

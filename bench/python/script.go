// Package python holds the Python baselines of the benchmark harness, so
// that the harness can run them from any directory: baseline.py is embedded
// in the binary.
package python

import _ "embed"

// Baseline is baseline.py: multiprocessing.Pool and ProcessPoolExecutor
// measured on the harness's scenarios, printed as one JSON object. Run it
// with python3 and --help for its options.
//
//go:embed baseline.py
var Baseline []byte

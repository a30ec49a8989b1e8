// Package python holds the Python baselines of the benchmark harness, so
// that the harness can run them from any directory: the scripts are
// embedded in the binary.
package python

import _ "embed"

// Baseline is baseline.py: multiprocessing.Pool and ProcessPoolExecutor
// measured on the harness's scenarios, printed as one JSON object. Run it
// with python3 and --help for its options.
//
//go:embed baseline.py
var Baseline []byte

// CLIBaseline is cli_baseline.py: the job of `safepool run` done with
// multiprocessing.Pool. It reads a file of JSON Lines, squares each value
// on a pool, and writes the squares as JSON Lines; the harness times it
// from outside. Run it with python3 WORKERS IN OUT.
//
//go:embed cli_baseline.py
var CLIBaseline []byte

// Peers is peers.py: billiard, pebble and joblib (loky) measured on the
// harness's scenarios, and the kill matrix and memory-kill scenario of every
// Python pool, printed as one JSON object. Run it with --help for its
// options.
//
//go:embed peers.py
var Peers []byte

//go:build race

package pool_test

// raceDetector is true when the tests run under -race. The pool then turns
// off the worker's address-space backstop (the race detector reserves
// terabytes of address space), so tests that need the backstop skip.
const raceDetector = true

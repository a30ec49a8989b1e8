// Package enginetest is the engine conformance suite: what a worker and a
// pool promise, checked on one engine, so that every engine gives the same
// statuses, messages, limits and stats. It is for tests only.
//
// Each engine's tests run it with the engine's name:
//
//	func TestConformance(t *testing.T) { enginetest.Run(t, "wasmtime") }
//
// The cases start real worker processes by re-executing the test binary,
// which this package's import of sandbox turns into workers; the binary
// must have the engine registered, which for an engine in a package of its
// own means importing that package in the test.
package enginetest

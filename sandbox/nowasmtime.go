//go:build !wasmtime

package sandbox

import "errors"

// This binary was built without -tags wasmtime: CheckEngine refuses
// "wasmtime" before any of these is reached.
const (
	wasmtimeBuilt       = false
	wasmtimeReservation = 0
)

var errNoWasmtime = errors.New("sandbox: this binary was built without wasmtime; rebuild with -tags wasmtime (needs cgo)")

func newWasmtime([]byte, string) (engine, *ModuleInfo, error) { return nil, nil, errNoWasmtime }

func prepareWasmtime([]byte, string) (*ModuleInfo, error) { return nil, errNoWasmtime }

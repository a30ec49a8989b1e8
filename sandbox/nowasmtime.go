//go:build !wasmtime

package sandbox

import (
	"errors"

	"github.com/safepool/safepool/module"
)

// This binary was built without -tags wasmtime: CheckEngine refuses
// "wasmtime" before any of these is reached.
const (
	wasmtimeBuilt       = false
	wasmtimeReservation = 0
)

var errNoWasmtime = errors.New("sandbox: this binary was built without wasmtime; rebuild with -tags wasmtime (needs cgo)")

func newWasmtime([]byte, string) (engine, *module.Info, error) { return nil, nil, errNoWasmtime }

func prepareWasmtime([]byte, string) (*module.Info, error) { return nil, errNoWasmtime }

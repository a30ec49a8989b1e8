//go:build cgo

package wasmtime_test

import (
	"testing"

	_ "github.com/safepool/safepool/engine/wasmtime"
	"github.com/safepool/safepool/internal/engine"
	"github.com/safepool/safepool/internal/enginetest"
)

// TestConformance runs the whole conformance suite on wasmtime: real worker
// processes, re-executions of this test binary, which has the engine
// registered because this file imports it.
func TestConformance(t *testing.T) {
	enginetest.Run(t, engine.Wasmtime)
}

package module

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// wasiFuncs is every function the worker's WASI module exports, with its
// type, read from wazero itself so that it cannot drift from what a worker
// really provides.
var wasiFuncs = sync.OnceValue(func() map[string]funcType {
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer r.Close(ctx)
	cm, err := wasi_snapshot_preview1.NewBuilder(r).Compile(ctx)
	if err != nil {
		panic("module: compile the WASI host module: " + err.Error()) // a wazero bug, not an input problem
	}
	funcs := map[string]funcType{}
	for name, d := range cm.ExportedFunctions() {
		funcs[name] = funcType{params: valueTypes(d.ParamTypes()), results: valueTypes(d.ResultTypes())}
	}
	return funcs
})

func valueTypes(ts []api.ValueType) []byte {
	out := make([]byte, len(ts))
	for i, t := range ts {
		out[i] = byte(t)
	}
	return out
}

// checkWASI checks one wasi_snapshot_preview1 import of type t against what
// the worker provides, so that a module importing a function WASI preview 1
// lacks (such as sock_open) fails at load, not in the worker.
func checkWASI(f Func, t funcType) error {
	want, ok := wasiFuncs()[f.Name]
	if !ok {
		return fmt.Errorf("%w: %s; WASI preview 1 has no such function, and the sandbox adds none", ErrForbiddenImport, f)
	}
	if !slices.Equal(want.params, t.params) || !slices.Equal(want.results, t.results) {
		return fmt.Errorf("%w: import %s, want %s", ErrBadSignature, f, funcOf("wasi_snapshot_preview1", f.Name, want))
	}
	return nil
}

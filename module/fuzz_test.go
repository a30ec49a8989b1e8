package module_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/module"
)

// FuzzInspect feeds the module loader arbitrary bytes. Inspect runs on
// untrusted input in the host, before any worker exists, so it must never
// panic, and its answer must be consistent: a refusal wraps exactly one of
// the package's errors, and an acceptance describes a module a worker can
// run.
//
// The seeds are every hand-written fixture and the malformed corpus; inputs
// the fuzzer found interesting are kept in testdata/fuzz/FuzzInspect.
//
//	go test -run '^$' -fuzz FuzzInspect -fuzztime 5m ./module
func FuzzInspect(f *testing.F) {
	for _, name := range []string{"wsquare", "wtraps", "wgrow", "wcmd", "wescape", "wtable", "wbadimport", "wbadsig", "wnoexport"} {
		f.Add(testguest.Bytes(f, name))
	}
	for _, bad := range testguest.Malformed(f) {
		f.Add(bad.Wasm)
	}
	f.Add(testguest.SDK().Encode())
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, wasm []byte) {
		listed := module.Describe(wasm) // must not panic either
		info, err := module.Inspect(ctx, wasm)
		if err != nil {
			if info != nil {
				t.Fatalf("Inspect returned both a module and an error: %v", err)
			}
			n := 0
			for _, s := range sentinels {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("the error wraps %d of the package's errors, want 1: %v", n, err)
			}
			if !strings.HasPrefix(err.Error(), "module: ") {
				t.Fatalf("the error lacks the package prefix: %v", err)
			}
			return
		}
		if listed == nil || !slices.EqualFunc(listed.Imports, info.Imports, sameFunc) || !slices.EqualFunc(listed.Exports, info.Exports, sameFunc) {
			t.Fatalf("Describe lists %+v, Inspect %+v", listed, info)
		}
		exports := map[string]bool{}
		for _, e := range info.Exports {
			exports[e.Name] = true
		}
		switch info.Kind {
		case module.KindSDK:
			for _, name := range []string{"safepool_abi_version", "safepool_alloc", "safepool_call", "safepool_handlers"} {
				if !exports[name] {
					t.Fatalf("accepted as an SDK module without %s", name)
				}
			}
			if info.Batch != exports["safepool_batch"] {
				t.Fatalf("Batch is %t, but safepool_batch exported is %t", info.Batch, exports["safepool_batch"])
			}
		case module.KindCommand:
			if !exports["_start"] {
				t.Fatal("accepted as a command without _start")
			}
		default:
			t.Fatalf("accepted with kind %v", info.Kind)
		}
		for _, im := range info.Imports {
			if !slices.Contains([]string{"wasi_snapshot_preview1", "safepool"}, im.Module) {
				t.Fatalf("accepted an import from %q: %v", im.Module, im)
			}
		}
	})
}

func sameFunc(a, b module.Func) bool {
	return a.String() == b.String()
}

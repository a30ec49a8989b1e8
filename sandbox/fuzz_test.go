package sandbox_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/sandbox"
)

// FuzzInspect feeds the module loader arbitrary bytes. Inspect runs on
// untrusted input in the host, before any worker exists, so it must never
// panic, and its answer must be consistent: a refusal wraps exactly one of
// the sandbox's errors, and an acceptance describes a module a worker can
// run.
//
// The seeds are every hand-written fixture and the malformed corpus; inputs
// the fuzzer found interesting are kept in testdata/fuzz/FuzzInspect.
//
//	go test -run '^$' -fuzz FuzzInspect -fuzztime 5m ./sandbox
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
		info, err := sandbox.Inspect(ctx, wasm)
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
				t.Fatalf("the error wraps %d of the sandbox's errors, want 1: %v", n, err)
			}
			if !strings.HasPrefix(err.Error(), "sandbox: ") {
				t.Fatalf("the error lacks the package prefix: %v", err)
			}
			return
		}
		exports := map[string]bool{}
		for _, e := range info.Exports {
			exports[e.Name] = true
		}
		switch info.Kind {
		case sandbox.KindSDK:
			for _, name := range []string{"safepool_abi_version", "safepool_alloc", "safepool_call", "safepool_handlers"} {
				if !exports[name] {
					t.Fatalf("accepted as an SDK module without %s", name)
				}
			}
			if info.Batch != exports["safepool_batch"] {
				t.Fatalf("Batch is %t, but safepool_batch exported is %t", info.Batch, exports["safepool_batch"])
			}
		case sandbox.KindCommand:
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

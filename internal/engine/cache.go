package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/safepool/safepool/internal/wire"
	"github.com/safepool/safepool/module"
)

// Prepare checks wasm as module.Inspect does, compiles it for the engine
// called name into the compilation cache under root, and returns what
// module.Inspect returns. Workers started afterwards load machine code
// instead of compiling. It is cheap when the cache already holds the
// module; a damaged entry is removed and compiled again. With root "" it
// only checks.
//
// Once it has succeeded, [Prepared] reports true for the same module,
// engine and cache, until [Forget].
//
// # Errors
//
// The errors of [Check] and of [module.Inspect].
func Prepare(ctx context.Context, name string, wasm []byte, root string, opts Options) (*module.Info, error) {
	e, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	dir := Dir(root, name, wasm, opts)
	info, err := e.Prepare(ctx, wasm, dir, opts)
	if err == nil && dir != "" {
		// Best effort: without the mark the next pool prepares again.
		if os.MkdirAll(dir, 0o700) == nil {
			_ = os.WriteFile(filepath.Join(dir, preparedMark), nil, 0o600)
		}
	}
	return info, err
}

// Prepared reports whether a Prepare of wasm for the engine called name
// into the cache under root has succeeded (and the entry has not been
// forgotten since): the module passed every check, and its machine code is
// in the cache. A pool then starts its workers at once, without decoding
// the module in the host at all.
func Prepared(name string, wasm []byte, root string, opts Options) bool {
	if root == "" || Check(name) != nil {
		return false
	}
	_, err := os.Stat(filepath.Join(Dir(root, name, wasm, opts), preparedMark))
	return err == nil
}

// Forget removes wasm's entry for the engine called name from the cache
// under root, so that the next compilation starts afresh. It is a no-op
// when there is no entry.
//
// An engine cannot always tell a damaged entry from a good one (wazero's
// checksum does not cover its table of function offsets), so a damaged
// entry can pass every check and then fail or crash a worker while it
// starts. A pool whose workers fail to start that way calls Forget and
// tries once more.
func Forget(name string, wasm []byte, root string, opts Options) error {
	if root == "" {
		return nil
	}
	return os.RemoveAll(Dir(root, name, wasm, opts))
}

// Dir returns the directory of wasm's entry for the engine called name in
// the cache under root, or "" when root is "": root/<engine>/<hash>, with
// "-nointerrupt" after the hash for Options.NoInterrupt and "-resettable"
// for Options.Resettable, whose machine code differs. Each module gets a
// directory of its own, so that a damaged entry can be removed without
// knowing the engine's file names.
func Dir(root, name string, wasm []byte, opts Options) string {
	if root == "" {
		return ""
	}
	sum := sha256.Sum256(wasm)
	entry := hex.EncodeToString(sum[:12])
	if opts.NoInterrupt {
		entry += "-nointerrupt"
	}
	if opts.Resettable {
		entry += "-resettable"
	}
	return filepath.Join(root, canonical(name), entry)
}

// DefaultCacheDir returns the cache root used when a pool is not given
// one: safepool's directory in the user's cache directory, or in the
// temporary directory. Each engine keeps its entries in a directory of its
// own under it.
func DefaultCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "safepool")
	}
	return filepath.Join(os.TempDir(), "safepool-cache")
}

// preparedMark is the file whose presence in an entry says that the module
// was prepared. Its name says which checks the module passed, so that a
// build whose checks differ checks every module again.
var preparedMark = fmt.Sprintf("prepared-abi%d-wire%d-checks%d", module.ABIVersion, wire.Version, checksVersion)

// checksVersion changes whenever module.Inspect's checks do.
const checksVersion = 3

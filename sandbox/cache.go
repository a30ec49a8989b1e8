package sandbox

import "os"

// ForgetCompiled removes wasm's entry from the compilation cache under
// cacheDir, so that the next compilation starts afresh. It is a no-op when
// there is no entry.
//
// wazero checks only part of a cache file (its checksum does not cover the
// table of function offsets), so a damaged entry can pass every check and
// then fail or crash a worker while it starts. A pool whose workers fail to
// start calls ForgetCompiled and tries once more.
func ForgetCompiled(wasm []byte, cacheDir string) error {
	if cacheDir == "" {
		return nil
	}
	return os.RemoveAll(cacheDirFor(cacheDir, wasm))
}

//go:build cgo

package wasmtime

import (
	"fmt"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/safepool/safepool/internal/engine"
)

// preopen grants the directories to the instance's WASI. wasmtime opens
// each one and resolves every path a guest gives beneath it with cap-std,
// which refuses "..", absolute paths and symlinks (absolute, relative or
// dangling) that leave it, the same confinement the wazero engine gets
// from openat2(RESOLVE_BENEATH) (internal/engine/wazero/fs.go). A
// read-only directory gets read permissions only, for itself and for its
// files, so every write in it fails; path_symlink is refused in all of
// them (wasi.go).
func preopen(cfg *wasmtime.WasiConfig, dirs []engine.GrantedDir) error {
	for _, d := range dirs {
		dirPerms, filePerms := wasmtime.DIR_READ, wasmtime.FILE_READ
		if d.Writable {
			dirPerms |= wasmtime.DIR_WRITE
			filePerms |= wasmtime.FILE_WRITE
		}
		if err := cfg.PreopenDir(d.HostPath, d.GuestPath, dirPerms, filePerms); err != nil {
			return fmt.Errorf("wasmtime: cannot open the granted directory %s (for %s): check that it exists and is a directory this process may read", d.HostPath, d.GuestPath)
		}
	}
	return nil
}

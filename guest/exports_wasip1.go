//go:build wasip1

package guest

import (
	"strings"
	"unsafe"
)

// This file holds the module's side of ABI.md: the safepool.result import and
// the safepool_* exports. Everything it calls is plain Go, tested on the host.

// buffers backs safepool_alloc. As a package variable it keeps every buffer
// the host may still write to reachable, so the collector cannot free it.
var buffers arena

//go:wasmimport safepool result
func hostResult(status int32, ptr unsafe.Pointer, size int32)

// report passes one task outcome to the host, which copies data at once.
func report(status int32, data []byte) {
	hostResult(status, unsafe.Pointer(unsafe.SliceData(data)), int32(len(data)))
}

//go:wasmexport safepool_abi_version
func abiVersion() int32 {
	return 1
}

//go:wasmexport safepool_alloc
func alloc(size int32) unsafe.Pointer {
	b := buffers.alloc(int(size))
	if b == nil {
		return nil
	}
	return unsafe.Pointer(unsafe.SliceData(b))
}

//go:wasmexport safepool_call
func call(fnPtr unsafe.Pointer, fnLen int32, inPtr unsafe.Pointer, inLen int32) {
	defer buffers.reset()
	taskBegins()
	runTask(bytesAt(fnPtr, fnLen), bytesAt(inPtr, inLen), report)
	yield()
}

//go:wasmexport safepool_handlers
func listHandlers() {
	report(statusOK, []byte(strings.Join(handlerNames(), "\n")))
}

//go:wasmexport safepool_batch
func batch(ptr unsafe.Pointer, size int32) {
	defer buffers.reset()
	runBatch(bytesAt(ptr, size), report)
}

// bytesAt views size bytes of linear memory at ptr as a slice.
func bytesAt(ptr unsafe.Pointer, size int32) []byte {
	if size <= 0 {
		return nil
	}
	return unsafe.Slice((*byte)(ptr), size)
}

//go:build wasip1

package guest

import "unsafe"

//go:wasmimport safepool host_call
func hostCall(namePtr unsafe.Pointer, nameLen int32, inPtr unsafe.Pointer, inLen int32) int32

//go:wasmimport safepool host_take
func hostTake(ptr unsafe.Pointer)

func callHost(name string, in []byte) ([]byte, error) {
	n := hostCall(unsafe.Pointer(unsafe.StringData(name)), int32(len(name)), unsafe.Pointer(unsafe.SliceData(in)), int32(len(in)))
	failed := n < 0
	if failed {
		n = -1 - n
	}
	b := make([]byte, n)
	if n > 0 {
		hostTake(unsafe.Pointer(unsafe.SliceData(b)))
	} else {
		hostTake(nil)
	}
	if failed {
		return nil, &HostError{Msg: string(b)}
	}
	return b, nil
}

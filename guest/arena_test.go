package guest_test

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/guest"
)

func TestArenaAllocationsDoNotOverlap(t *testing.T) {
	var a guest.Arena
	sizes := []int{0, 1, 7, 8, 100, 5000, 3, 20000, 0}
	var bufs [][]byte
	for i, n := range sizes {
		b := a.Alloc(n)
		require.Len(t, b, n)
		require.NotNil(t, unsafe.SliceData(b[:cap(b)]))
		require.Zero(t, uintptr(unsafe.Pointer(unsafe.SliceData(b[:cap(b)])))%8, "allocation %d is not 8-byte aligned", i)
		for j := range b {
			b[j] = byte(i)
		}
		bufs = append(bufs, b)
	}
	for i, b := range bufs {
		for _, c := range b {
			require.Equal(t, byte(i), c, "allocation %d was overwritten", i)
		}
	}
	require.Greater(t, a.Chunks(), 1)
}

func TestArenaZeroSizeGetsDistinctPointers(t *testing.T) {
	var a guest.Arena
	p := uintptr(unsafe.Pointer(unsafe.SliceData(a.Alloc(0)[:1])))
	q := uintptr(unsafe.Pointer(unsafe.SliceData(a.Alloc(0)[:1])))
	require.NotZero(t, p)
	require.NotEqual(t, p, q)
}

func TestArenaNegativeSize(t *testing.T) {
	var a guest.Arena
	require.Nil(t, a.Alloc(-1))
}

func TestArenaResetReusesLargestChunk(t *testing.T) {
	var a guest.Arena
	a.Alloc(3000)
	a.Alloc(3000)
	a.Alloc(9000)
	require.Equal(t, 3, a.Chunks())
	size := a.Cap()
	a.Reset()
	require.Equal(t, 1, a.Chunks())
	require.Equal(t, size, a.Cap())

	first := unsafe.SliceData(a.Alloc(size))
	a.Reset()
	require.Equal(t, first, unsafe.SliceData(a.Alloc(10)), "after reset the chunk is reused from its start")
	require.Equal(t, size, a.Cap(), "the chunk never shrinks")
}

func TestArenaSteadyStateDoesNotAllocate(t *testing.T) {
	var a guest.Arena
	a.Alloc(10)
	a.Alloc(1000)
	a.Reset()
	allocs := testing.AllocsPerRun(100, func() {
		a.Alloc(10)
		a.Alloc(1000)
		a.Reset()
	})
	require.Zero(t, allocs)
}

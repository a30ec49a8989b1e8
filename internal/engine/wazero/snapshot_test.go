package wazero

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestMemorySnapshot: after a reset the memory holds the snapshot's bytes
// again, whether the reset copied the written pages back (a few written)
// or threw every page away (more than maxCopied written), and a reset of a
// memory that grew refuses.
func TestMemorySnapshot(t *testing.T) {
	const size = 2 << 20
	ps := unix.Getpagesize()
	c := &memCap{limit: 8 << 20}
	m := c.Allocate(0, 0).(*capMemory)
	defer m.Free()
	mem := m.Reallocate(size)
	for i := 0; i < size; i += 3 * ps {
		mem[i] = byte(i / ps) // some pages hold data, the rest zeros
	}
	want := bytes.Clone(mem)
	require.NoError(t, m.snapshot())
	require.Equal(t, want, mem, "taking the snapshot changes nothing")
	require.NotNil(t, m.view, "the page map is readable here")

	for _, tc := range []struct {
		name   string
		pages  int
		copied bool
	}{
		{"a few pages written", 10, true},
		{"the same pages again", 10, true},
		{"more than maxCopied written", maxCopied + 50, false},
		{"after that, a few again", 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for p := range tc.pages {
				mem[p*ps+7] = 0xEE
			}
			copied := m.copyDirty()
			require.Equal(t, tc.copied, copied)
			if !copied {
				require.True(t, m.reset(), "throwing every page away")
			}
			require.Equal(t, want, mem)
		})
	}

	t.Run("grown", func(t *testing.T) {
		mem = m.Reallocate(size + 64<<10)
		require.False(t, m.reset())
	})
}

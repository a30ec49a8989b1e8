package tail_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/tail"
)

func TestBuffer(t *testing.T) {
	cases := []struct {
		name    string
		max     int
		writes  []string
		want    string
		dropped int64
	}{
		{"fits", 10, []string{"abc", "def"}, "abcdef", 0},
		{"overflow across writes", 4, []string{"abc", "def"}, "cdef", 2},
		{"one big write", 3, []string{"ab", strings.Repeat("x", 10) + "yz"}, "xyz", 11},
		{"zero max keeps nothing", 0, []string{"abc"}, "", 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := tail.New(tc.max)
			for _, w := range tc.writes {
				n, err := b.Write([]byte(w))
				require.NoError(t, err)
				require.Equal(t, len(w), n)
			}
			require.Equal(t, tc.want, string(b.Bytes()))
			require.Equal(t, tc.dropped, b.Dropped())
			b.Reset()
			require.Empty(t, b.Bytes())
		})
	}
}

// TestResetReuse: a buffer is reset and written again, once per task; a
// reset buffer reads as empty and the next write shows.
func TestResetReuse(t *testing.T) {
	b := tail.New(8)
	require.Nil(t, b.Bytes(), "never written")
	b.Reset()
	require.Nil(t, b.Bytes())
	for _, s := range []string{"one", "two", "three!!!!"} {
		_, _ = b.Write([]byte(s))
		require.Equal(t, s[max(0, len(s)-8):], string(b.Bytes()))
		b.Reset()
		require.Nil(t, b.Bytes(), "reset after %q", s)
		require.Zero(t, b.Dropped())
	}
}

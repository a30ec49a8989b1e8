package harness

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// compileInto does what wazero's file cache does for one compilation: write
// a uniquely named temporary file next to the entry and rename it into
// place.
func compileInto(t *testing.T, dir, key string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	f, err := os.CreateTemp(dir, key+".*.tmp")
	require.NoError(t, err)
	_, err = f.WriteString("machine code")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, os.Rename(f.Name(), filepath.Join(dir, key)))
}

func TestCompileWatch(t *testing.T) {
	root := t.TempDir()
	// An entry from before the watch is not a compilation of this start-up.
	compileInto(t, filepath.Join(root, "old"), "aaaa")

	w, err := watchCompiles(root)
	require.NoError(t, err)
	// Directories made after the watch started, as a pool makes them on a
	// cold cache, and two processes compiling the same module into the
	// same entry, which the final contents cannot tell from one.
	dir := filepath.Join(root, "0123abcd", "wazero-v1-amd64-linux")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	time.Sleep(20 * time.Millisecond) // wazero makes the directory well before it compiles
	compileInto(t, dir, "bbbb")
	compileInto(t, dir, "bbbb")
	compileInto(t, filepath.Join(root, "old"), "cccc")
	time.Sleep(50 * time.Millisecond)
	w.stop()
	require.Equal(t, 3, w.compiles())
	require.Equal(t, 3, countFiles(root))
}

func TestCompileWatchEmpty(t *testing.T) {
	root := t.TempDir()
	compileInto(t, root, "aaaa")
	w, err := watchCompiles(root)
	require.NoError(t, err)
	w.stop()
	require.Zero(t, w.compiles())
}

func TestPercentile(t *testing.T) {
	ds := make([]time.Duration, 100)
	for i := range ds {
		ds[i] = time.Duration(i+1) * time.Millisecond
	}
	require.Equal(t, 50*time.Millisecond, percentile(ds, 50))
	require.Equal(t, 99*time.Millisecond, percentile(ds, 99))
	require.Equal(t, 100*time.Millisecond, percentile(ds, 100))
	require.Equal(t, time.Millisecond, percentile(ds[:1], 99))
	require.Zero(t, percentile(nil, 50))
}

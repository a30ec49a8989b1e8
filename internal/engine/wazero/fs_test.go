package wazero

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"golang.org/x/sys/unix"
)

// TestConfinedFS calls the filesystem with the raw paths a guest could
// send (wazero itself cleans ".." away before they get here; this is the
// layer under that): every path that leaves the directory fails with
// EPERM, whichever call carries it.
func TestConfinedFS(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "d")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "secret"), []byte("s"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "f"), []byte("f"), 0o644))
	require.NoError(t, os.Symlink(filepath.Join(root, "secret"), filepath.Join(dir, "abs")))
	require.NoError(t, os.Symlink("../secret", filepath.Join(dir, "rel")))
	require.NoError(t, os.Symlink("..", filepath.Join(dir, "up")))
	require.NoError(t, os.Symlink(filepath.Join(root, "new"), filepath.Join(dir, "dangling")))
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = unix.Close(fd) })
	f := &confinedFS{FS: sysfs.DirFS(dir), root: fd}

	for _, p := range []string{"../secret", "sub/../../secret", "abs", "rel", "up/secret", "/etc/passwd", "dangling"} {
		_, e := f.OpenFile(p, experimentalsys.O_RDONLY, 0)
		require.Equal(t, experimentalsys.EPERM, e, "open %s", p)
		_, e = f.OpenFile(p, experimentalsys.O_WRONLY|experimentalsys.O_CREAT, 0o644)
		require.Equal(t, experimentalsys.EPERM, e, "create %s", p)
		_, e = f.Stat(p)
		require.Equal(t, experimentalsys.EPERM, e, "stat %s", p)
	}
	require.Equal(t, experimentalsys.EPERM, f.Mkdir("../x", 0o755))
	require.Equal(t, experimentalsys.EPERM, f.Mkdir("up/x", 0o755))
	require.Equal(t, experimentalsys.EPERM, f.Rename("f", "../moved"))
	require.Equal(t, experimentalsys.EPERM, f.Link("f", "up/linked"))
	require.Equal(t, experimentalsys.EPERM, f.Unlink("up/secret"))
	require.Equal(t, experimentalsys.EPERM, f.Chmod("abs", 0o777))
	require.Equal(t, experimentalsys.EPERM, f.Utimens("rel", 0, 0))
	require.Equal(t, experimentalsys.EPERM, f.Symlink("f", "g"))
	require.NoFileExists(t, filepath.Join(root, "new"))
	require.NoFileExists(t, filepath.Join(root, "moved"))
	require.FileExists(t, filepath.Join(root, "secret"))

	// What stays inside works, including names that do not exist yet.
	file, e := f.OpenFile("sub/../f", experimentalsys.O_RDONLY, 0)
	require.Zero(t, e)
	require.Zero(t, file.Close())
	file, e = f.OpenFile("sub/new", experimentalsys.O_WRONLY|experimentalsys.O_CREAT, 0o644)
	require.Zero(t, e)
	require.Zero(t, file.Close())
	require.Zero(t, f.Rename("sub/new", "renamed"))
	require.Zero(t, f.Mkdir("made", 0o755))
	_, e = f.Stat("missing")
	require.Equal(t, experimentalsys.ENOENT, e)
	_, e = f.Lstat("abs") // the link itself is inside
	require.Zero(t, e)
}

package wazero

import (
	"errors"
	"io/fs"
	"path"

	"github.com/tetratelabs/wazero"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	wsys "github.com/tetratelabs/wazero/sys"
	"golang.org/x/sys/unix"

	"github.com/safepool/safepool/internal/engine"
)

// confinedFS is a granted directory as the guest sees it. wazero's own
// directory mounts refuse ".." and absolute paths, but follow symlinks
// wherever they point. confinedFS resolves every path it is given with
// openat2(RESOLVE_BENEATH) from the directory before it lets wazero use
// it, so a path that leaves the directory by a symlink (absolute or
// relative) fails with EPERM; and a guest cannot make symlinks, so no path
// can change from beneath to outside between the check and the use by a
// guest's doing (the guest's WASI calls are synchronous; another worker
// sharing a writable directory could not plant one either).
type confinedFS struct {
	experimentalsys.FS
	root int // O_PATH descriptor of the host directory
}

// mountDirs returns wazero's filesystem configuration for the granted
// directories and a function that closes what it opened.
func mountDirs(dirs []engine.GrantedDir) (wazero.FSConfig, func(), error) {
	cfg := wazero.NewFSConfig()
	var fds []int
	closeAll := func() {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
	}
	for _, d := range dirs {
		fd, err := unix.Open(d.HostPath, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			closeAll()
			return nil, nil, &fs.PathError{Op: "open granted directory", Path: d.HostPath, Err: err}
		}
		fds = append(fds, fd)
		var inner experimentalsys.FS = sysfs.DirFS(d.HostPath)
		if !d.Writable {
			inner = &sysfs.ReadFS{FS: inner}
		}
		cfg = cfg.(sysfs.FSConfig).WithSysFSMount(&confinedFS{FS: inner, root: fd}, d.GuestPath)
	}
	return cfg, closeAll, nil
}

// check reports whether p, relative to the directory, stays inside it.
// With follow, a final symlink is followed (and must stay inside too). A
// path whose last name does not exist yet is inside when its parent is
// and the name is not a dangling symlink, which the call would follow out.
func (f *confinedFS) check(p string, follow bool) experimentalsys.Errno {
	if p == "" || p == "/" {
		p = "."
	}
	err := f.resolve(p, follow)
	if errors.Is(err, unix.ENOENT) {
		if f.resolve(p, false) == nil {
			return experimentalsys.EPERM // a dangling symlink
		}
		dir := path.Dir(p)
		err = f.resolve(dir, true)
		if err == nil {
			return 0 // let the call report that the name does not exist, or make it
		}
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, unix.EXDEV), errors.Is(err, unix.EAGAIN):
		return experimentalsys.EPERM // leaves the directory
	}
	return experimentalsys.UnwrapOSError(err)
}

func (f *confinedFS) resolve(p string, follow bool) error {
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS}
	if !follow {
		how.Flags |= unix.O_NOFOLLOW
	}
	for {
		fd, err := unix.Openat2(f.root, p, &how)
		if err == unix.EINTR {
			continue
		}
		if err == nil {
			_ = unix.Close(fd)
		}
		return err
	}
}

func (f *confinedFS) OpenFile(p string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	if e := f.check(p, flag&experimentalsys.O_NOFOLLOW == 0); e != 0 {
		return nil, e
	}
	return f.FS.OpenFile(p, flag, perm)
}

func (f *confinedFS) Lstat(p string) (wsys.Stat_t, experimentalsys.Errno) {
	if e := f.check(p, false); e != 0 {
		return wsys.Stat_t{}, e
	}
	return f.FS.Lstat(p)
}

func (f *confinedFS) Stat(p string) (wsys.Stat_t, experimentalsys.Errno) {
	if e := f.check(p, true); e != 0 {
		return wsys.Stat_t{}, e
	}
	return f.FS.Stat(p)
}

func (f *confinedFS) Mkdir(p string, perm fs.FileMode) experimentalsys.Errno {
	if e := f.check(p, false); e != 0 {
		return e
	}
	return f.FS.Mkdir(p, perm)
}

func (f *confinedFS) Chmod(p string, perm fs.FileMode) experimentalsys.Errno {
	if e := f.check(p, true); e != 0 {
		return e
	}
	return f.FS.Chmod(p, perm)
}

func (f *confinedFS) Rename(from, to string) experimentalsys.Errno {
	if e := f.check(from, false); e != 0 {
		return e
	}
	if e := f.check(to, false); e != 0 {
		return e
	}
	return f.FS.Rename(from, to)
}

func (f *confinedFS) Rmdir(p string) experimentalsys.Errno {
	if e := f.check(p, false); e != 0 {
		return e
	}
	return f.FS.Rmdir(p)
}

func (f *confinedFS) Unlink(p string) experimentalsys.Errno {
	if e := f.check(p, false); e != 0 {
		return e
	}
	return f.FS.Unlink(p)
}

func (f *confinedFS) Link(oldPath, newPath string) experimentalsys.Errno {
	if e := f.check(oldPath, false); e != 0 {
		return e
	}
	if e := f.check(newPath, false); e != 0 {
		return e
	}
	return f.FS.Link(oldPath, newPath)
}

// Symlink is refused: a symlink a guest made could be swapped in under a
// path between its check and its use by another worker's guest.
func (f *confinedFS) Symlink(string, string) experimentalsys.Errno { return experimentalsys.EPERM }

func (f *confinedFS) Readlink(p string) (string, experimentalsys.Errno) {
	if e := f.check(p, false); e != 0 {
		return "", e
	}
	return f.FS.Readlink(p)
}

func (f *confinedFS) Utimens(p string, atim, mtim int64) experimentalsys.Errno {
	if e := f.check(p, true); e != 0 {
		return e
	}
	return f.FS.Utimens(p, atim, mtim)
}

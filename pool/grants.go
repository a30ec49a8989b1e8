package pool

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/safepool/safepool/internal/remote"
	"github.com/safepool/safepool/internal/wire"
)

// Dir is a host directory granted to the guest (Config.Dirs).
type Dir struct {
	// HostPath is the directory on the machine the workers run on: this
	// one, or for a cluster each agent's. A relative path is taken from
	// the current directory.
	HostPath string
	// GuestPath is where the guest sees it: an absolute slash-separated
	// path such as "/data".
	GuestPath string
	// Writable lets the guest create, write, rename and remove files in
	// it; otherwise every write fails.
	Writable bool
}

// checkGrants checks Env, Args and Dirs, and makes the host paths
// absolute. A local pool's directories must exist; a cluster's are the
// agents' paths and are checked there.
func (c *Config) checkGrants() error {
	for k, v := range c.Env {
		switch {
		case k == "":
			return fmt.Errorf("Env has an empty name; give each variable a name")
		case strings.ContainsAny(k, "=\x00"):
			return fmt.Errorf("Env name %q contains '=' or a NUL byte; use a plain name", k)
		case strings.ContainsRune(v, 0):
			return fmt.Errorf("Env value of %s contains a NUL byte", k)
		}
	}
	for i, a := range c.Args {
		if strings.ContainsRune(a, 0) {
			return fmt.Errorf("Args[%d] contains a NUL byte", i)
		}
	}
	seen := map[string]bool{}
	dirs := make([]Dir, len(c.Dirs))
	for i, d := range c.Dirs {
		switch {
		case d.HostPath == "":
			return fmt.Errorf("Dirs[%d] has no HostPath; name the host directory to grant", i)
		case !strings.HasPrefix(d.GuestPath, "/"):
			return fmt.Errorf("Dirs[%d].GuestPath %q is not absolute; use a path such as /data", i, d.GuestPath)
		case strings.ContainsRune(d.HostPath+d.GuestPath, 0):
			return fmt.Errorf("Dirs[%d] contains a NUL byte", i)
		}
		d.GuestPath = path.Clean(d.GuestPath)
		if seen[d.GuestPath] {
			return fmt.Errorf("Dirs grants %s twice; give each directory its own GuestPath", d.GuestPath)
		}
		seen[d.GuestPath] = true
		if c.Cluster == "" {
			abs, err := filepath.Abs(d.HostPath)
			if err != nil {
				return fmt.Errorf("Dirs[%d]: %v", i, err)
			}
			d.HostPath = abs
			st, err := os.Stat(abs)
			if err != nil {
				return fmt.Errorf("Dirs[%d]: %s does not exist or cannot be read (%v); grant a directory that exists", i, abs, errors.Unwrap(err))
			}
			if !st.IsDir() {
				return fmt.Errorf("Dirs[%d]: %s is not a directory", i, abs)
			}
		}
		dirs[i] = d
	}
	c.Dirs = dirs
	c.Args = slices.Clone(c.Args)
	return nil
}

// envList is Env as sorted "KEY=VALUE" entries.
func envList(env map[string]string) []string {
	if len(env) == 0 {
		return nil
	}
	l := make([]string, 0, len(env))
	for k, v := range env {
		l = append(l, k+"="+v)
	}
	slices.Sort(l)
	return l
}

func envMap(l []string) map[string]string {
	if len(l) == 0 {
		return nil
	}
	m := make(map[string]string, len(l))
	for _, kv := range l {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func wireDirs(ds []Dir) []wire.Dir {
	var out []wire.Dir
	for _, d := range ds {
		out = append(out, wire.Dir{HostPath: d.HostPath, GuestPath: d.GuestPath, Writable: d.Writable})
	}
	return out
}

func remoteDirs(ds []Dir) []remote.Dir {
	var out []remote.Dir
	for _, d := range ds {
		out = append(out, remote.Dir{HostPath: d.HostPath, GuestPath: d.GuestPath, Writable: d.Writable})
	}
	return out
}

func dirsOf(ds []remote.Dir) []Dir {
	var out []Dir
	for _, d := range ds {
		out = append(out, Dir{HostPath: d.HostPath, GuestPath: d.GuestPath, Writable: d.Writable})
	}
	return out
}

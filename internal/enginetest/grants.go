package enginetest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/wire"
	"github.com/safepool/safepool/pool"
)

// grantEnvArgs: the guest's environment is exactly the granted variables,
// and its argv the program name followed by the granted arguments, in
// order.
func grantEnvArgs(t *testing.T, eng string) {
	wk := startWorker(t, eng, "tasks", func(i *wire.Init) {
		i.Env = []string{"EMPTY=", "GREETING=hello world"}
		i.Args = []string{"-v", "two words", ""}
		i.Program = "tasks.wasm"
	})
	r := one(t, wk, "env", "")
	require.Equal(t, wire.StatusOK, r.Status, r.Error)
	var got struct{ Env, Args []string }
	require.NoError(t, json.Unmarshal(r.Output, &got))
	require.Equal(t, []string{"EMPTY=", "GREETING=hello world"}, got.Env)
	require.Equal(t, []string{"tasks.wasm", "-v", "two words", ""}, got.Args)
}

// dirTree makes a granted read-only directory in, a writable one out, and
// a secret beside them that no path from either may reach, with symlinks
// in in that point at it (absolute and relative) and at a missing file
// outside.
func dirTree(t *testing.T) (in, out, secret string) {
	root := t.TempDir()
	in, out = filepath.Join(root, "in"), filepath.Join(root, "out")
	secret = filepath.Join(root, "secret.txt")
	require.NoError(t, os.MkdirAll(filepath.Join(in, "sub"), 0o755))
	require.NoError(t, os.Mkdir(out, 0o755))
	require.NoError(t, os.WriteFile(secret, []byte("secret"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(in, "hello.txt"), []byte("hello"), 0o644))
	require.NoError(t, os.Symlink(secret, filepath.Join(in, "abs")))
	require.NoError(t, os.Symlink("../secret.txt", filepath.Join(in, "rel")))
	require.NoError(t, os.Symlink("sub/../../secret.txt", filepath.Join(out, "rel")))
	require.NoError(t, os.Symlink(filepath.Join(root, "planted.txt"), filepath.Join(out, "dangling")))
	require.NoError(t, os.Symlink("hello.txt", filepath.Join(in, "inside")))
	return in, out, secret
}

// grantDirs: a granted directory is readable, a writable one writable, and
// nothing else is reachable: not by "..", a symlink (absolute, relative or
// dangling) or an absolute path; writes to a read-only directory fail, and
// the guest cannot make symlinks.
func grantDirs(t *testing.T, eng string) {
	in, out, _ := dirTree(t)
	dirs := []wire.Dir{{HostPath: in, GuestPath: "/in"}, {HostPath: out, GuestPath: "/out", Writable: true}}
	wk := startWorker(t, eng, "tasks", func(i *wire.Init) { i.Dirs = dirs })
	read := func(p string) (content, readErr string) {
		r := one(t, wk, "readfile", p)
		require.Equal(t, wire.StatusOK, r.Status, r.Error)
		var got struct {
			Content   string `json:"content"`
			ReadError string `json:"read_error"`
		}
		require.NoError(t, json.Unmarshal(r.Output, &got))
		return got.Content, got.ReadError
	}
	c, e := read("/in/hello.txt")
	require.Equal(t, "hello", c, e)
	c, e = read("/in/inside")
	require.Equal(t, "hello", c, "a symlink that stays inside works: %s", e)
	for _, p := range []string{"/in/abs", "/in/rel", "/out/rel", "/in/../secret.txt", "/in/sub/../../secret.txt", "/etc/passwd", "/secret.txt"} {
		c, e := read(p)
		require.Empty(t, c, "%s must not be readable", p)
		require.NotEmpty(t, e, p)
	}

	write := func(p, content string) wire.Result { return one(t, wk, "writefile", p+"\n"+content) }
	r := write("/out/new.txt", "data")
	require.Equal(t, wire.StatusOK, r.Status, r.Error)
	b, err := os.ReadFile(filepath.Join(out, "new.txt"))
	require.NoError(t, err)
	require.Equal(t, "data", string(b))

	for _, p := range []string{"/in/new.txt", "/in/hello.txt"} {
		r := write(p, "x")
		require.Equal(t, wire.StatusError, r.Status, "%s is read-only", p)
	}
	b, err = os.ReadFile(filepath.Join(in, "hello.txt"))
	require.NoError(t, err)
	require.Equal(t, "hello", string(b))
	require.NoFileExists(t, filepath.Join(in, "new.txt"))

	r = write("/out/dangling", "planted")
	require.Equal(t, wire.StatusError, r.Status, "a write through a dangling symlink must not create its target")
	require.NoFileExists(t, filepath.Join(filepath.Dir(out), "planted.txt"))
	r = write("/out/rel", "x")
	require.Equal(t, wire.StatusError, r.Status)

	// Neither absolute nor relative: a symlink the guest left in a
	// writable directory would lead the host's own programs out of it.
	for _, l := range []struct{ target, name string }{{"/", "root"}, {"../secret.txt", "up"}, {"new.txt", "same"}} {
		r = one(t, wk, "symlink", l.target+"\n/out/"+l.name)
		require.Equal(t, wire.StatusError, r.Status, "the guest cannot make symlinks (%s)", l.target)
		_, err = os.Lstat(filepath.Join(out, l.name))
		require.True(t, os.IsNotExist(err), l.name)
	}
}

// grantCommand: a WASI command module gets the same grants as an SDK
// module.
func grantCommand(t *testing.T, eng string) {
	in, _, _ := dirTree(t)
	wk := startWorker(t, eng, "upper", func(i *wire.Init) {
		i.Env = []string{"K=v"}
		i.Args = []string{"a1"}
		i.Program = "upper.wasm"
		i.Dirs = []wire.Dir{{HostPath: in, GuestPath: "/data"}}
	})
	r := one(t, wk, "", "grants")
	require.Equal(t, wire.StatusOK, r.Status, r.Error)
	want := "K=v\n--\nupper.wasm\na1\n--\nhello"
	require.True(t, strings.HasPrefix(string(r.Output), want), "%q", r.Output)
}

// answerHostCall is the host side of the suite's host functions: "upper"
// upper-cases its input, "fail" fails. Any other name is unknown.
func answerHostCall(c *wire.HostCall) *wire.HostReply {
	switch c.Name {
	case "upper":
		return &wire.HostReply{Output: []byte(strings.ToUpper(string(c.Input)))}
	case "fail":
		return &wire.HostReply{Failed: true, Error: "failed on purpose"}
	}
	return &wire.HostReply{Failed: true, Error: "unknown"}
}

// hostCalls: a guest calls host functions through the worker's pipe; a
// failure comes back to it as an error, the worker goes on, and a name the
// pool does not provide fails in the worker without a round trip.
func hostCalls(t *testing.T, eng string) {
	wk := startWorker(t, eng, "tasks", func(i *wire.Init) { i.HostFuncs = []string{"fail", "upper"} })
	rs := run(t, wk, task("callhost", "upper\nhello"), task("callhost", "fail\nx"), task("callhost", "nope\nx"), task("callhost", "upper\n"))
	for _, r := range rs {
		require.Equal(t, wire.StatusOK, r.Status, r.Error)
	}
	require.Equal(t, "got:HELLO", string(rs[0].Output))
	require.Equal(t, "host error: host function fail: failed on purpose", string(rs[1].Output))
	require.Equal(t, `host error: no host function "nope"; the pool provides ["fail" "upper"]`, string(rs[2].Output))
	require.Equal(t, "got:", string(rs[3].Output))
}

// cGuest: an SDK module written in C with clang and wasi-libc runs tasks,
// sees its grants and calls host functions like a Go one.
func cGuest(t *testing.T, eng string) {
	wk := startWorker(t, eng, "csquare", func(i *wire.Init) {
		i.Env = []string{"GREETING=bonjour"}
		i.HostFuncs = []string{"fail", "upper"}
	})
	require.ElementsMatch(t, []string{"square", "env", "upper", "fail"}, wk.Ready().Handlers)
	rs := run(t, wk, task("square", "12"), task("square", "x"), task("env", ""), task("upper", "abc"), task("fail", "q"), task("nope", ""), task("square", "3"))
	require.Equal(t, wire.StatusOK, rs[0].Status, rs[0].Error)
	require.Equal(t, "144", string(rs[0].Output))
	require.Equal(t, wire.StatusError, rs[1].Status)
	require.Equal(t, "square: input is not a decimal number", rs[1].Error)
	require.Equal(t, "bonjour", string(rs[2].Output))
	require.Equal(t, "got:ABC", string(rs[3].Output))
	require.Equal(t, "boom: q", rs[4].Error)
	require.Equal(t, wire.StatusError, rs[5].Status)
	require.Contains(t, rs[5].Error, "unknown function")
	require.Equal(t, "9", string(rs[6].Output))
}

// poolGrantDirs: pool.Config.Dirs reaches the workers: a read-only
// directory is readable through the pool's API, a writable one writable,
// and an escape fails.
func poolGrantDirs(t *testing.T, eng string) {
	in, out, _ := dirTree(t)
	p := NewPool(t, "tasks", func(c *pool.Config) {
		c.Engine = eng
		c.Dirs = []pool.Dir{{HostPath: in, GuestPath: "/in"}, {HostPath: out, GuestPath: "/out", Writable: true}}
	})
	ctx := context.Background()
	rs, err := p.Map(ctx, "readfile", [][]byte{[]byte("/in/hello.txt"), []byte("/in/rel")})
	require.NoError(t, err)
	for _, r := range rs {
		require.Equal(t, pool.StatusOK, r.Status, r.Error)
	}
	require.Contains(t, string(rs[0].Output), `"content":"hello"`)
	require.NotContains(t, string(rs[1].Output), `"content"`)
	require.Contains(t, string(rs[1].Output), "not permitted")
	r, err := p.Apply(ctx, "writefile", []byte("/out/p.txt\npooled"))
	require.NoError(t, err)
	require.Equal(t, pool.StatusOK, r.Status, r.Error)
	b, err := os.ReadFile(filepath.Join(out, "p.txt"))
	require.NoError(t, err)
	require.Equal(t, "pooled", string(b))
	r, err = p.Apply(ctx, "writefile", []byte("/in/p.txt\nx"))
	require.NoError(t, err)
	require.Equal(t, pool.StatusError, r.Status, "/in is read-only")
	require.NoFileExists(t, filepath.Join(in, "p.txt"))
}

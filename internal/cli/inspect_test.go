package cli_test

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/testguest"
)

func TestInspect(t *testing.T) {
	t.Parallel()
	notWasm := filepath.Join(t.TempDir(), "notes.txt")
	require.NoError(t, os.WriteFile(notWasm, []byte("plain text"), 0o644))
	cases := []struct {
		name   string
		module string
		code   int
		want   []string
	}{
		{"sdk module", tasks(t), 0, []string{
			"kind      sdk (",
			"batch     yes",
			"handlers  big, callhost, echo, env, exit, fail, garbage, hold, memhog, panic, readfile, recurse, sleep, slow_square, spin, square, stderr, stdout, symlink, writefile",
			"  safepool.result(i32, i32, i32) -> ()",
			"  safepool_call(i32, i32, i32, i32) -> ()",
			"run it    safepool run --module ",
		}},
		{"hand-written sdk module", testguest.Path(t, "wsquare"), 0, []string{"kind      sdk (", "handlers  square"}},
		{"command module", testguest.Path(t, "upper"), 0, []string{
			"kind      command (a WASI command",
			"  _start() -> ()",
		}},
		{"forbidden import", testguest.Path(t, "wbadimport"), 2, []string{
			"kind      unusable (",
			"why       module: imports something the sandbox does not provide: env.foo() -> ()",
			"imports   1\n  env.foo() -> ()",
		}},
		{"bad signature", testguest.Path(t, "wbadsig"), 2, []string{"kind      unusable (", "why       module: export has the wrong signature"}},
		{"not wasm", notWasm, 2, []string{"kind      unusable (", "pass a compiled .wasm file", "imports   0"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := cli(t, "", "inspect", tc.module)
			require.Equal(t, tc.code, o.code, o.stderr)
			require.Contains(t, o.stdout, "module    "+tc.module+"\n")
			require.Regexp(t, regexp.MustCompile(`sha256    [0-9a-f]{64}\n`), o.stdout)
			for _, w := range tc.want {
				require.Contains(t, o.stdout, w)
			}
		})
	}
}

func TestInspectUsage(t *testing.T) {
	t.Parallel()
	o := cli(t, "", "inspect")
	require.Equal(t, 2, o.code)
	require.Contains(t, o.stderr, "inspect takes one module path")

	o = cli(t, "", "inspect", filepath.Join(t.TempDir(), "gone.wasm"))
	require.Equal(t, 2, o.code)
	require.Contains(t, o.stderr, "no such file or directory; pass the path of a compiled .wasm file")

	o = cli(t, "", "inspect", "-h")
	require.Equal(t, 0, o.code)
	require.Contains(t, o.stdout, "safepool inspect PATH")
}

func TestVersionAndHelp(t *testing.T) {
	t.Parallel()
	o := cli(t, "", "version")
	require.Equal(t, 0, o.code)
	// cmd/safepool has the engines every binary has, and no other.
	require.Regexp(t, `^safepool \S+ \(go1\.\S+, \w+/\w+, engines: wazero v\d\S+\)\n$`, o.stdout)

	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		o = cli(t, "", args...)
		require.Equal(t, 0, o.code, args)
		require.Contains(t, o.stdout, "safepool run --module PATH")
		require.Contains(t, o.stdout, "Exit codes: 0")
	}
	for _, args := range [][]string{{"help", "run"}, {"run", "-h"}, {"run", "--help"}} {
		o = cli(t, "", args...)
		require.Equal(t, 0, o.code, args)
		require.Contains(t, o.stdout, "safepool run --module PATH", args)
		require.Contains(t, o.stdout, "--max-tasks-per-worker N", args)
	}

	o = cli(t, "")
	require.Equal(t, 2, o.code, "no command is bad usage")
	require.Contains(t, o.stderr, "Usage:")

	o = cli(t, "", "frobnicate")
	require.Equal(t, 2, o.code)
	require.Contains(t, o.stderr, `unknown command "frobnicate"; the commands are run, serve, inspect, report, version and help`)

	o = cli(t, "", "help", "frobnicate")
	require.Equal(t, 2, o.code)
}

func TestWorkerByHand(t *testing.T) {
	t.Parallel()
	o := cli(t, "", "worker")
	require.Equal(t, 2, o.code)
	require.Contains(t, o.stderr, "not meant to be run by hand")
}

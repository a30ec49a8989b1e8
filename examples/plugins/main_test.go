package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/examples/internal/exampletest"
)

func TestPlugins(t *testing.T) {
	stdout, stderr, code := exampletest.Run(t)
	require.Equal(t, 0, code, stderr)
	rows := []string{
		`greet +16 MiB, 1s +greet\("ada"\) +ok +[\d.]+ms +"hello, ada"`,
		`greet +16 MiB, 1s +greet\("grace"\) +ok +[\d.]+ms +"hello, grace"`,
		`greet +16 MiB, 1s +greet\("linus"\) +ok +[\d.]+ms +"hello, linus"`,
		`wordcount +16 MiB, 1s +count\("the quick brown fox"\) +ok +[\d.]+ms +\{"words":4,"lines":1\}`,
		`wordcount +16 MiB, 1s +count\("one\\ntwo\\nthree"\) +ok +[\d.]+ms +\{"words":3,"lines":3\}`,
		`wordcount +16 MiB, 1s +count\(""\) +ok +[\d.]+ms +\{"words":0,"lines":1\}`,
		// The worker's own watchdog stops the spin at the deadline; on a
		// machine so loaded that it cannot, the pool's kills the worker a
		// second later. Either way the status is timeout.
		`rogue +32 MiB, 500ms +spin\(null\) +timeout +[\d.]+ms +(task ran past its timeout of 500ms|worker stopped answering)`,
		`rogue +32 MiB, 500ms +flood\(null\) +memory_limit +[\d.]+ms +memory limit of 32 MiB reached`,
		`rogue +32 MiB, 500ms +snoop\(null\) +error +[\d.]+ms +denied: open /etc/passwd: .*; environment: 0 variables`,
		`rogue +32 MiB, 500ms +hello\(null\) +ok +[\d.]+ms +"still here"`,
		`catalog +16 MiB, 1s +price\("apple"\) +ok +[\d.]+ms +"1.20 EUR"`,
		`catalog +16 MiB, 1s +price\("durian"\) +ok +[\d.]+ms +"no price: host function price: no such item durian"`,
		`catalog +16 MiB, 1s +motd\(\{\}\) +ok +[\d.]+ms +"welcome"`,
		`csquare +16 MiB, 1s +square\(12\) +ok +[\d.]+ms +144`,
		`csquare +16 MiB, 1s +upper\(c plugin\) +ok +[\d.]+ms +got:C PLUGIN`,
		`csquare +16 MiB, 1s +env\(\) +ok +[\d.]+ms +hello from the host`,
		`csquare +16 MiB, 1s +fail\(x\) +error +[\d.]+ms +boom: x`,
	}
	re := "(?m)^plugin +caps +call +status +time +result\n"
	for _, r := range rows {
		re += r + ".*\n"
	}
	re += "\nthe well-behaved plugins: 6 of 6 calls ok while rogue misbehaved\n$"
	require.Regexp(t, regexp.MustCompile(re), stdout)
}

// TestCPluginIsUpToDate rebuilds the C plugin as gen.go does and compares
// it with the committed module. It is skipped where clang cannot build for
// wasm32-wasi.
func TestCPluginIsUpToDate(t *testing.T) {
	clang, err := exec.LookPath("clang")
	if err != nil {
		t.Skip("clang is not installed; see gen.go")
	}
	out := filepath.Join(t.TempDir(), "csquare.wasm")
	cmd := exec.Command(clang, "--target=wasm32-wasi", "-O2", "-mexec-model=reactor", "-Wl,--strip-all",
		"-o", out, "guests/csquare/csquare.c")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("clang cannot build for wasm32-wasi here (see gen.go): %v\n%s", err, b)
	}
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	want, err := os.ReadFile("guests/csquare/csquare.wasm")
	require.NoError(t, err)
	require.Equal(t, want, got, "guests/csquare/csquare.wasm is out of date: run go generate ./examples/plugins")
}

package testguest_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/testguest"
)

var wantNames = []string{
	"csquare", "sdkcmd", "tasks", "upper",
	"wbadimport", "wbadsig", "wbigmem", "wchaos", "wcmd", "wescape", "wgrow", "wnoexport", "wslowstart", "wsquare", "wtable", "wtraps",
}

func TestNames(t *testing.T) {
	require.ElementsMatch(t, wantNames, testguest.Names())
}

func TestPathGivesEveryFixture(t *testing.T) {
	// In parallel, as several tests of a package may ask at once.
	var wg sync.WaitGroup
	paths := make([]string, len(wantNames))
	start := time.Now()
	for i, name := range wantNames {
		wg.Go(func() { paths[i] = testguest.Path(t, name) })
	}
	wg.Wait()
	t.Logf("all fixtures in %v", time.Since(start))
	for i, name := range wantNames {
		b, err := os.ReadFile(paths[i])
		require.NoError(t, err)
		require.True(t, bytes.HasPrefix(b, []byte("\x00asm\x01\x00\x00\x00")), "%s is not a WebAssembly module", name)
		require.Equal(t, name+".wasm", filepath.Base(paths[i]))
		require.Equal(t, paths[i], testguest.Path(t, name), "the same path every time")
	}
	require.True(t, strings.HasPrefix(paths[slices.Index(wantNames, "sdkcmd")], filepath.Join(os.TempDir(), "safepool-testguest")+string(filepath.Separator)), "Go fixtures are built into the temporary directory")
	require.Equal(t, testguest.Bytes(t, "wcmd"), mustRead(t, testguest.Path(t, "wcmd")))
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

func TestPathRejectsUnknownNames(t *testing.T) {
	for _, name := range []string{"nope", "", "../tasks", "wat"} {
		t.Run(name, func(t *testing.T) {
			ft := &fatalTB{TB: t}
			ft.run(func() { testguest.Path(ft, name) })
			require.True(t, ft.failed, "Path(%q) must fail the test", name)
			require.Contains(t, ft.msg, "testguest: ")
		})
	}
	ft := &fatalTB{TB: t}
	ft.run(func() { testguest.Path(ft, "nope") })
	require.Contains(t, ft.msg, "the fixtures are: csquare, sdkcmd, tasks, upper, wbadimport")
}

// fatalTB records a Fatalf instead of failing the real test.
type fatalTB struct {
	testing.TB
	failed bool
	msg    string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.failed = true
	f.msg = fmt.Sprintf(format, args...)
	panic(f)
}

// run calls fn, absorbing the panic Fatalf uses to stop it.
func (f *fatalTB) run(fn func()) {
	defer func() {
		if v := recover(); v != nil && v != f {
			panic(v)
		}
	}()
	fn()
}

func TestWATFixturesAreUpToDate(t *testing.T) {
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Skip("wat2wasm (wabt) is not installed")
	}
	sources, err := filepath.Glob("testdata/wat/*.wat")
	require.NoError(t, err)
	require.NotEmpty(t, sources)
	for _, src := range sources {
		name := strings.TrimSuffix(filepath.Base(src), ".wat")
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), name+".wasm")
			msg, err := exec.Command(wat2wasm, src, "-o", out).CombinedOutput()
			require.NoError(t, err, "%s", msg)
			require.Equal(t, mustRead(t, out), testguest.Bytes(t, name),
				"testdata/wat/%s.wasm is stale: run go generate ./internal/testguest", name)
		})
	}
}

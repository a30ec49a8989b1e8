package testguest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Path returns the path of the compiled WebAssembly module for the fixture
// called name, building it first if it is a Go fixture that has not been
// built yet. It fails tb if there is no such fixture or the build fails.
//
//	mod := testguest.Path(t, "tasks") // an SDK reactor built from Go
//	cmd := testguest.Path(t, "wcmd")  // a committed, hand-written module
//
// A Go fixture that imports the guest SDK is built as a reactor
// (-buildmode=c-shared); any other is built as a WASI command; a fixture
// whose directory holds a file called buildmode is built with the mode that
// file names (sdkcmd: the SDK built as a command, exe). Builds go to
// os.TempDir()/safepool-testguest/<hash>/<name>.wasm, where the hash covers
// the fixture's source, the SDK's source, go.mod and [runtime.Version], so a
// warm call costs a few file reads. Each build is written to a temporary
// file and renamed into place, so test binaries running in parallel can
// share the cache. Path is safe for concurrent use; one process builds each
// fixture at most once.
func Path(tb testing.TB, name string) string {
	tb.Helper()
	p, err := path(name)
	if err != nil {
		tb.Fatalf("testguest: %v", err)
	}
	return p
}

// Build returns the path of the compiled module for the fixture called
// name, as [Path] does, for code that has no testing.TB: a TestMain that
// prepares the module its package's examples run.
//
//	func TestMain(m *testing.M) {
//		mod, err := testguest.Build("wchaos")
//		...
//	}
func Build(name string) (string, error) {
	p, err := path(name)
	if err != nil {
		return "", fmt.Errorf("testguest: %w", err)
	}
	return p, nil
}

// Bytes returns the compiled module for the fixture called name, as [Path]
// does, read into memory.
func Bytes(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(Path(tb, name))
	if err != nil {
		tb.Fatalf("testguest: %v", err)
	}
	return b
}

// Names returns the names of all fixtures, Go and WAT, sorted.
func Names() []string {
	dir, err := dataDir()
	if err != nil {
		return nil
	}
	var names []string
	if entries, err := os.ReadDir(dir); err == nil {
		for _, e := range entries {
			if e.IsDir() && e.Name() != "wat" && e.Name() != "c" {
				names = append(names, e.Name())
			}
		}
	}
	wats, _ := filepath.Glob(filepath.Join(dir, "wat", "*.wat"))
	for _, w := range wats {
		names = append(names, strings.TrimSuffix(filepath.Base(w), ".wat"))
	}
	cs, _ := filepath.Glob(filepath.Join(dir, "c", "*.c"))
	for _, c := range cs {
		names = append(names, strings.TrimSuffix(filepath.Base(c), ".c"))
	}
	slices.Sort(names)
	return names
}

func path(name string) (string, error) {
	dir, err := dataDir()
	if err != nil {
		return "", err
	}
	if name == "" || strings.ContainsAny(name, `/\.`) {
		return "", fmt.Errorf("bad fixture name %q", name)
	}
	wasm := filepath.Join(dir, "wat", name+".wasm")
	if _, err := os.Stat(wasm); err == nil {
		return wasm, nil
	}
	if c := filepath.Join(dir, "c", name+".wasm"); fileExists(c) {
		return c, nil
	}
	if _, err := os.Stat(filepath.Join(dir, name)); err != nil || name == "wat" || name == "c" {
		return "", fmt.Errorf("no fixture %q; the fixtures are: %s", name, strings.Join(Names(), ", "))
	}
	v, _ := builds.LoadOrStore(name, &build{})
	b := v.(*build)
	b.once.Do(func() { b.path, b.err = buildGo(name) })
	return b.path, b.err
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Package guestbuild compiles a Go guest module of this repository for
// wasip1 on first use, and keeps it in a cache keyed by everything the
// build depends on, so that examples and test fixtures need nothing but Go.
//
// It does what you would do by hand:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o guest.wasm ./examples/seed/guest
//
// The build mode comes from the package: the contents of a file called
// buildmode in its directory if there is one, else c-shared (a reactor)
// when it imports the guest SDK and exe (a WASI command) when it does not.
// The cache key covers the package's files, the guest SDK, go.mod, go.sum,
// the build mode and the Go version. Each build is written to a temporary
// file and renamed into place, so processes building at once never see
// half a file.
package guestbuild

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

// guestImport is the import path that marks a Go package as an SDK reactor.
const guestImport = "github.com/safepool/safepool/guest"

// Build returns the path of the module built from dir, a package directory
// relative to the repository root such as "examples/seed/guest", building
// it into the user's cache directory when the cache does not hold this
// version, and saying so on stderr. Examples use it.
//
// # Errors
//
// Build fails when the repository or the go command cannot be found, or the
// guest does not compile; the error says what to do.
func Build(dir string) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	return build(dir, filepath.Join(cache, "safepool", "examples"), true)
}

// BuildTo is Build into cacheDir, quietly. Test fixtures use it.
func BuildTo(dir, cacheDir string) (string, error) { return build(dir, cacheDir, false) }

func build(dir, cacheDir string, say bool) (string, error) {
	root, err := Root()
	if err != nil {
		return "", err
	}
	src := filepath.Join(root, filepath.FromSlash(dir))
	mode, err := Mode(src)
	if err != nil {
		return "", err
	}
	sum, err := hashSources(root, src, mode)
	if err != nil {
		return "", err
	}
	outDir := filepath.Join(cacheDir, sum)
	out := filepath.Join(outDir, filepath.Base(src)+".wasm")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", fmt.Errorf("guestbuild: %w", err)
	}
	tmp, err := os.CreateTemp(outDir, "build-*.tmp")
	if err != nil {
		return "", fmt.Errorf("guestbuild: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name()) // a no-op once renamed

	if say {
		fmt.Fprintf(os.Stderr, "building the guest module %s (first run only)...\n", dir)
	}
	cmd := exec.Command(goTool(), "build", "-buildmode="+mode, "-o", tmp.Name(), "./"+filepath.ToSlash(dir))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return "", errors.New("guestbuild: the go command is not on PATH; install Go 1.24 or later, or pass -module with a compiled module")
		}
		return "", fmt.Errorf("guestbuild: building %s: %v\n%s", dir, err, msg)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", fmt.Errorf("guestbuild: %w", err)
	}
	return out, nil
}

// Mode returns the -buildmode of the Go package in dir (see the package
// doc).
func Mode(dir string) (string, error) {
	if b, err := os.ReadFile(filepath.Join(dir, "buildmode")); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	reactor, err := importsGuest(dir)
	if err != nil || !reactor {
		return "exe", err
	}
	return "c-shared", nil
}

// importsGuest reports whether any Go file in dir imports the guest SDK.
func importsGuest(dir string) (bool, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		return false, fmt.Errorf("guestbuild: no Go files in %s", dir)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		ast, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			return false, err
		}
		for _, imp := range ast.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == guestImport {
				return true, nil
			}
		}
	}
	return false, nil
}

// hashSources returns a digest of everything a build of src depends on that
// can change under a warm cache.
func hashSources(root, src, mode string) (string, error) {
	own, err := filepath.Glob(filepath.Join(src, "*"))
	if err != nil {
		return "", err
	}
	sdk, err := filepath.Glob(filepath.Join(root, "guest", "*.go"))
	if err != nil {
		return "", err
	}
	files := append(own, sdk...)
	files = append(files, filepath.Join(root, "go.mod"), filepath.Join(root, "go.sum"))
	h := sha256.New()
	fmt.Fprintf(h, "%s\nbuildmode=%s\n", runtime.Version(), mode)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		if fi, err := os.Stat(f); err != nil || fi.IsDir() {
			continue
		}
		if err := hashFile(h, root, f); err != nil {
			return "", fmt.Errorf("guestbuild: %w", err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func hashFile(h io.Writer, root, file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	rel, _ := filepath.Rel(root, file)
	fmt.Fprintf(h, "%s %d\n", filepath.ToSlash(rel), len(b))
	_, err = h.Write(b)
	return err
}

// goTool returns the go command to build with: the one in GOROOT if that is
// set, else the one on PATH.
func goTool() string {
	if goroot := os.Getenv("GOROOT"); goroot != "" {
		p := filepath.Join(goroot, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "go"
}

// Root returns the repository root: found from this file's path when the
// program was built from source, else from the go command.
var Root = sync.OnceValues(findRoot)

func findRoot() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		for dir := filepath.Dir(file); ; dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				return dir, nil
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	out, err := exec.Command(goTool(), "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", errors.New("guestbuild: cannot find the safepool repository; run from inside it, or pass -module with a compiled module")
	}
	return filepath.Dir(gomod), nil
}

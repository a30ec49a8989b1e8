package testguest

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

// guestImport is the import path that marks a Go fixture as an SDK reactor.
const guestImport = "github.com/safepool/safepool/guest"

// build is one fixture's build in this process, done at most once.
type build struct {
	once sync.Once
	path string
	err  error
}

var builds sync.Map // fixture name -> *build

// buildGo compiles the Go fixture called name into the shared cache, unless
// a build of the same sources is already there.
func buildGo(name string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	src := filepath.Join(root, "internal", "testguest", "testdata", name)
	mode, err := buildMode(src)
	if err != nil {
		return "", err
	}
	sum, err := hashSources(root, src, mode)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(os.TempDir(), "safepool-testguest", sum)
	out := filepath.Join(dir, name+".wasm")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, name+".*.tmp")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name()) // a no-op once renamed

	args := []string{"build", "-o", tmp.Name(), "-buildmode=" + mode, "./internal/testguest/testdata/" + name}
	cmd := exec.Command(goTool(), args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building fixture %q: %v\n%s", name, err, msg)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", err
	}
	return out, nil
}

// buildMode returns the -buildmode of the fixture in dir: the contents of
// its buildmode file if it has one, else c-shared (a reactor) when it
// imports the guest SDK and exe (a WASI command) when it does not.
func buildMode(dir string) (string, error) {
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
		return false, fmt.Errorf("no Go files in %s", dir)
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

// hashSources returns a hex digest of everything a fixture build depends on
// that can change under a warm cache.
func hashSources(root, src, mode string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\nbuildmode=%s\n", runtime.Version(), mode)
	fixture, err := filepath.Glob(filepath.Join(src, "*"))
	if err != nil {
		return "", err
	}
	sdk, err := filepath.Glob(filepath.Join(root, "guest", "*.go"))
	if err != nil {
		return "", err
	}
	files := append(fixture, sdk...)
	files = append(files, filepath.Join(root, "go.mod"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		if fi, err := os.Stat(f); err != nil || fi.IsDir() {
			continue
		}
		if err := hashFile(h, root, f); err != nil {
			return "", err
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

// dataDir returns this package's testdata directory.
func dataDir() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "internal", "testguest", "testdata"), nil
}

var moduleRoot = sync.OnceValues(findModuleRoot)

// findModuleRoot walks up from this source file's directory to go.mod, and
// asks the go command if the source path is not usable (a -trimpath build).
func findModuleRoot() (string, error) {
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
	if err != nil {
		return "", fmt.Errorf("finding the module root: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("finding the module root: not inside a Go module")
	}
	return filepath.Dir(gomod), nil
}

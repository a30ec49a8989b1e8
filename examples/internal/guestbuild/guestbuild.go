// Package guestbuild compiles an example's guest module on first use, so
// that `go run ./examples/<name>` works on a machine with nothing but Go.
//
// It does what you would do by hand:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o guest.wasm ./examples/seed/guest
//
// and keeps the result in the user's cache directory, keyed by a hash of the
// guest's sources, the guest SDK, go.mod and the Go version, so later runs
// start at once.
package guestbuild

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Build returns the path of the compiled module built from dir, a package
// directory relative to the repository root such as "examples/seed/guest".
// It builds the module when the cache does not hold this version of it,
// saying so on stderr.
//
// # Errors
//
// Build fails when the repository or the go command cannot be found, or
// the guest does not compile; the error says what to do.
func Build(dir string) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	src := filepath.Join(root, filepath.FromSlash(dir))
	sum, err := hashSources(root, src)
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	outDir := filepath.Join(cache, "safepool", "examples", sum)
	out := filepath.Join(outDir, filepath.Base(src)+".wasm")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", fmt.Errorf("guestbuild: %w", err)
	}
	// Build to a temporary name and rename, so that programs building the
	// same guest at once never see half a file.
	tmp, err := os.CreateTemp(outDir, "build-*.tmp")
	if err != nil {
		return "", fmt.Errorf("guestbuild: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())

	fmt.Fprintf(os.Stderr, "building the guest module %s (first run only)...\n", dir)
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", tmp.Name(), "./"+filepath.ToSlash(dir))
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

// repoRoot finds the repository root: from this file's path when the
// program was built from source, else from the go command.
func repoRoot() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		root := filepath.Join(filepath.Dir(file), "..", "..", "..")
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			return filepath.Clean(root), nil
		}
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", errors.New("guestbuild: cannot find the safepool repository; run the example from inside it, or pass -module with a compiled module")
	}
	return filepath.Dir(gomod), nil
}

// hashSources hashes what a guest build depends on and can change: its own
// files, the guest SDK, go.mod, go.sum and the Go version.
func hashSources(root, src string) (string, error) {
	own, err := filepath.Glob(filepath.Join(src, "*.go"))
	if err != nil {
		return "", err
	}
	if len(own) == 0 {
		return "", fmt.Errorf("guestbuild: no Go files in %s", src)
	}
	sdk, err := filepath.Glob(filepath.Join(root, "guest", "*.go"))
	if err != nil {
		return "", err
	}
	files := append(own, sdk...)
	files = append(files, filepath.Join(root, "go.mod"), filepath.Join(root, "go.sum"))
	h := sha256.New()
	fmt.Fprintln(h, runtime.Version())
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		rel, _ := filepath.Rel(root, f)
		fmt.Fprintln(h, filepath.ToSlash(rel))
		fh, err := os.Open(f)
		if err != nil {
			return "", fmt.Errorf("guestbuild: %w", err)
		}
		_, err = io.Copy(h, fh)
		fh.Close()
		if err != nil {
			return "", fmt.Errorf("guestbuild: %w", err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

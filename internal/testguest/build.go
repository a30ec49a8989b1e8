package testguest

import (
	"os"
	"path/filepath"
	"sync"

	"github.com/safepool/safepool/internal/guestbuild"
)

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
	return guestbuild.BuildTo("internal/testguest/testdata/"+name, filepath.Join(os.TempDir(), "safepool-testguest"))
}

// dataDir returns this package's testdata directory.
func dataDir() (string, error) {
	root, err := guestbuild.Root()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "internal", "testguest", "testdata"), nil
}

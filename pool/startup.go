package pool

import (
	"errors"
	"strings"

	"github.com/safepool/safepool/internal/wire"
)

// mayBeCache reports whether workers that failed to start may have met a
// damaged entry of the compilation cache, which wazero cannot always detect
// (its checksum does not cover the table of function offsets): a worker
// crashed or was killed without naming a problem, or instantiating the
// compiled module failed. New then forgets the entry and tries once more.
// A problem the worker names otherwise (an ABI version, an _initialize that
// fails, a memory cap too small to start) is the module's, and is not
// retried: forgetting a good cache entry would make every worker compile.
func mayBeCache(errs []error) bool {
	for _, err := range errs {
		if err == nil {
			continue
		}
		var f *wire.Fatal
		if !errors.As(err, &f) || strings.Contains(f.Message, "instantiate module") {
			return true
		}
	}
	return false
}

package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/trace"

	"github.com/safepool/safepool/internal/proc"
)

// startTrace starts a runtime/trace of this worker into
// DIR/worker-PID.trace when the host set proc.TraceEnv to DIR, and returns
// the function that stops it and closes the file (nil when tracing is off).
// The file is created before the seccomp filter is installed and written
// until the worker returns from serve; go tool trace reads it.
//
// # Errors
//
// A directory that cannot take the file is an error that says so; the
// worker reports it as its start-up's Fatal, so that a pool asked for
// traces it cannot write fails at New rather than running without them.
func startTrace() (stop func(), err error) {
	dir := os.Getenv(proc.TraceEnv)
	if dir == "" {
		return nil, nil
	}
	path := filepath.Join(dir, fmt.Sprintf("worker-%d.trace", os.Getpid()))
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot write the worker's trace: %w; set it to a writable directory, or unset it", proc.TraceEnv, err)
	}
	if err := trace.Start(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: start the worker's trace: %w", proc.TraceEnv, err)
	}
	return func() {
		trace.Stop()
		f.Close()
	}, nil
}

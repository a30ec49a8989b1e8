// Package exampletest runs an example program the way a user does, for the
// examples' tests: it builds the program in the test's working directory,
// runs it, and returns what it printed.
package exampletest

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Run builds the example in the current directory and runs it with args.
// It fails t if the build fails or the program does not exit within two
// minutes, and returns the program's stdout, stderr and exit code.
func Run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "example")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building the example: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("the example did not exit in time; stdout:\n%s\nstderr:\n%s", o.String(), e.String())
	}
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running the example: %v", err)
	}
	return o.String(), e.String(), code
}

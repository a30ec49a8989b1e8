package main_test

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/examples/internal/exampletest"
)

func TestSeed(t *testing.T) {
	stdout, stderr, code := exampletest.Run(t)
	require.Equal(t, 0, code, stderr)
	want := `^== skip
kill -9 \d+ \(the worker running task 3\)
\[0 1 4 <nil> 16 25 36 49 64 81\]
killed tasks:
  task 3: square\(3\), status killed after 1 attempt\(s\): worker killed by SIGKILL while running the task

== retry
kill -9 \d+ \(the worker running task 3\)
\[0 1 4 9 16 25 36 49 64 81\]
task 3 ran 2 times; killed tasks: 0

== abort
kill -9 \d+ \(the worker running task 3\)
map failed: pool: task 3 \(square\) ended with killed after 1 attempt\(s\): worker killed by SIGKILL while running the task
the task that aborted it: index 3, input 3, status killed
$`
	require.Regexp(t, regexp.MustCompile(want), stdout)
}

func TestSeedOneMode(t *testing.T) {
	stdout, stderr, code := exampletest.Run(t, "-mode", "retry")
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `^== retry\nkill -9 \d+ \(the worker running task 3\)\n\[0 1 4 9 16 25 36 49 64 81\]\n`, stdout)
	require.NotContains(t, stdout, "== skip")

	_, stderr, code = exampletest.Run(t, "-mode", "ignore")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "-mode must be skip, retry, abort or all")
}

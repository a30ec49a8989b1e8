package main_test

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/examples/internal/exampletest"
)

// The example's trace: the program's span, and under it one span per
// attempt, task 3's killed one with its error and its retry linked to it.
func TestTracing(t *testing.T) {
	stdout, stderr, code := exampletest.Run(t)
	require.Equal(t, 0, code, stderr)
	want := `^kill -9 (\d+) \(the worker running task 3\)
\[0 1 4 9 16 25\]

square 0\.\.5 \(trace [0-9a-f]{32}\)
  safepool square: task 0, attempt 1, ok on worker \d+, \d+ms
  safepool square: task 1, attempt 1, ok on worker \d+, \d+ms
  safepool square: task 2, attempt 1, ok on worker \d+, \d+ms
  safepool square: task 3, attempt 1, killed on worker (\d+), \d+ms; error: worker killed by SIGKILL while running the task
  safepool square: task 3, attempt 2, ok on worker (\d+), \d+ms; retries attempt 1
  safepool square: task 4, attempt 1, ok on worker \d+, \d+ms
  safepool square: task 5, attempt 1, ok on worker \d+, \d+ms
$`
	m := regexp.MustCompile(want).FindStringSubmatch(stdout)
	require.NotNil(t, m, "got:\n%s", stdout)
	require.Equal(t, m[1], m[2], "the killed attempt's span names the worker that was killed")
	require.NotEqual(t, m[2], m[3], "the retry ran on another worker")
}

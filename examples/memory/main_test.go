package main_test

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/examples/internal/exampletest"
)

func TestMemory(t *testing.T) {
	stdout, stderr, code := exampletest.Run(t)
	require.Equal(t, 0, code, stderr)
	// Under skip the 40 MiB task ends with memory_limit under its 16 MiB
	// cap; under retry the cap doubles until it fits.
	want := `^== skip \(the default\): each task gets a 16 MiB cap
task +needs +attempt +cap +status +peak
0 +1 MiB +1 +16 MiB +ok +\d+ MiB
1 +4 MiB +1 +16 MiB +ok +\d+ MiB
2 +40 MiB +1 +16 MiB +memory_limit +-

== retry: OnMemoryLimit: pool.Retry, Retry.MemoryGrowth: 2, Retry.MaxMemory: 128 MiB
task +needs +attempt +cap +status +peak
0 +1 MiB +1 +16 MiB +ok +\d+ MiB
1 +4 MiB +1 +16 MiB +ok +\d+ MiB
2 +40 MiB +1 +16 MiB +memory_limit +-
2 +40 MiB +2 +32 MiB +memory_limit +-
2 +40 MiB +3 +64 MiB +ok +(4\d|5\d|6\d) MiB
$`
	require.Regexp(t, regexp.MustCompile(want), stdout)
}

package testguest_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero/sys"
)

func TestUpper(t *testing.T) {
	cases := []struct {
		name     string
		stdin    string
		exitCode uint32
		stdout   string
		stderr   string
	}{
		{"upper-cases stdin", "hello, World\n", 0, "HELLO, WORLD\n", ""},
		{"empty", "", 0, "", ""},
		{"fail", "fail\n", 3, "", "bad input\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := load(t, "upper", hostOptions{stdin: []byte(tc.stdin)})
			if tc.exitCode == 0 {
				require.NoError(t, in.initErr)
			} else {
				var exit *sys.ExitError
				require.ErrorAs(t, in.initErr, &exit)
				require.Equal(t, tc.exitCode, exit.ExitCode())
			}
			require.Equal(t, tc.stdout, in.stdout.String())
			require.Equal(t, tc.stderr, in.stderr.String())
		})
	}
}

func TestWCmd(t *testing.T) {
	in := load(t, "wcmd", hostOptions{})
	require.NoError(t, in.initErr)
	require.Equal(t, "hi\n", in.stdout.String())
	require.Nil(t, in.mod.ExportedFunction("safepool_abi_version"))
}

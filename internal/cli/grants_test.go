package cli_test

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRunGrants: --env, --arg and --dir reach the guest, and nothing else
// does.
func TestRunGrants(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello"), 0o644))
	o := cli(t, "0\n", "run", "--module", tasks(t), "--func", "env", "--workers", "1",
		"--env", "GREETING=hi there", "--env", "EMPTY=", "--arg", "-v", "--arg", "x y")
	require.Zero(t, o.code, o.stderr)
	var rec record
	require.NoError(t, json.Unmarshal([]byte(o.stdout), &rec))
	var got struct{ Env, Args []string }
	require.NoError(t, json.Unmarshal(rec.Output, &got), string(rec.Output))
	require.Equal(t, []string{"EMPTY=", "GREETING=hi there"}, got.Env)
	require.Len(t, got.Args, 3)
	require.Equal(t, []string{"-v", "x y"}, got.Args[1:])

	b64 := func(s string) string { return `"` + base64.StdEncoding.EncodeToString([]byte(s)) + `"` + "\n" }
	o = cli(t, b64("/data/hello.txt")+b64("/data/new.txt\nx"), "run", "--module", tasks(t), "--func", "readfile",
		"--workers", "1", "--encoding", "base64", "--dir", dir+":/data")
	require.Zero(t, o.code, o.stderr)
	lines := strings.Split(strings.TrimSpace(o.stdout), "\n")
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &rec))
	var out string
	require.NoError(t, json.Unmarshal(rec.Output, &out))
	content, err := base64.StdEncoding.DecodeString(out)
	require.NoError(t, err)
	require.Contains(t, string(content), `"content":"hello"`)
}

// TestRunGrantFlagsRefused: malformed grants exit with code 2 and say what
// to write instead.
func TestRunGrantFlagsRefused(t *testing.T) {
	t.Parallel()
	for flag, want := range map[string]string{
		"--env=NOVALUE":         "not KEY=VALUE",
		"--env==x":              "not KEY=VALUE",
		"--dir=/tmp":            "not HOST:GUEST or HOST:GUEST:rw",
		"--dir=/tmp:data":       "absolute guest path",
		"--dir=/tmp:/d:rx":      "not HOST:GUEST or HOST:GUEST:rw",
		"--dir=/nonexistent:/d": "grant a directory that exists",
	} {
		o := cli(t, "1\n", "run", "--module", tasks(t), "--func", "square", "--workers", "1", flag)
		require.Equal(t, 2, o.code, "%s: %s", flag, o.stderr)
		require.Contains(t, o.stderr, want, flag)
	}
}

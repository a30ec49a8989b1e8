package walkthrough_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	beginMarker = "<!-- walkthrough:begin -->"
	endMarker   = "<!-- walkthrough:end -->"
)

// block is one fenced code block of the walkthrough.
type block struct {
	lang string // the fence's info string: sh, go or text
	line int    // the line of README.md the fence opens on
	body string
}

// TestREADMEWalkthrough runs the README's "Writing task modules" steps in an
// empty directory, the way a user pasting them into one shell would, and
// checks what the host prints.
func TestREADMEWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go guest and a host with the go command, up to a minute on a cold cache")
	}
	for _, tool := range []string{"bash", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the walkthrough needs %s on PATH: %v", tool, err)
		}
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	blocks, err := walkthrough(string(readme))
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := t.TempDir()
	sh := &shell{cwd: start, env: append(os.Environ(), "SAFEPOOL="+root), state: filepath.Join(t.TempDir(), "cwd")}
	var (
		stdout  string
		ranSh   bool
		checked int
	)
	for _, b := range blocks {
		where := fmt.Sprintf("README.md:%d", b.line)
		switch b.lang {
		case "sh":
			stdout = sh.run(ctx, t, where, b.body)
			ranSh = true
		case "go":
			name, ok := fileName(b.body)
			require.True(t, ok, "%s: a go block's first line must name its file, as in // tasks/main.go", where)
			path := filepath.Join(start, name)
			require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
			require.NoError(t, os.WriteFile(path, []byte(b.body), 0o644))
		case "text":
			require.True(t, ranSh, "%s: a text block must follow the sh block whose output it shows", where)
			require.Equal(t, strings.TrimSpace(b.body), strings.TrimSpace(stdout), "%s: what the commands above it print", where)
			ranSh = false
			checked++
		}
	}
	require.Positive(t, checked, "the walkthrough has no text block, so nothing it runs is checked")
}

// TestREADMEWalkthroughIsWellFormed checks, without running anything, what
// TestREADMEWalkthrough relies on: the README has the markers, the blocks
// are of the three kinds it runs, each go block names its file and is
// gofmt'ed as a user's editor would leave it.
func TestREADMEWalkthroughIsWellFormed(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	blocks, err := walkthrough(string(readme))
	require.NoError(t, err)
	kinds := map[string]int{}
	for _, b := range blocks {
		kinds[b.lang]++
		if b.lang != "go" {
			continue
		}
		_, ok := fileName(b.body)
		require.True(t, ok, "README.md:%d: a go block's first line must name its file, as in // tasks/main.go", b.line)
		formatted, err := format.Source([]byte(b.body))
		require.NoError(t, err, "README.md:%d", b.line)
		require.Equal(t, string(formatted), b.body, "README.md:%d: the block is not gofmt'ed", b.line)
	}
	require.Equal(t, map[string]int{"sh": 4, "go": 2, "text": 1}, kinds)
}

func TestWalkthroughParser(t *testing.T) {
	cases := []struct {
		name, md string
		want     []block
		wantErr  string
	}{
		{"blocks between the markers only", "```sh\nno\n```\n" + beginMarker + "\ntext\n```sh\necho hi\n```\n```text\nhi\n```\n" + endMarker + "\n```go\nno\n```\n",
			[]block{{"sh", 6, "echo hi\n"}, {"text", 9, "hi\n"}}, ""},
		{"no markers", "```sh\necho\n```\n", nil, "no " + beginMarker},
		{"unknown block", beginMarker + "\n```bash\necho\n```\n" + endMarker, nil, `a "bash" block`},
		{"no end", beginMarker + "\n```sh\necho\n```\n", nil, "does not end"},
		{"open block", beginMarker + "\n```sh\necho\n" + endMarker, nil, "does not end"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := walkthrough(tc.md)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// shell runs sh blocks one after another in bash, each starting in the
// directory the one before it ended in.
type shell struct {
	cwd   string
	env   []string
	state string // a file the script writes its final directory to
}

func (s *shell) run(ctx context.Context, t *testing.T, where, script string) (stdout string) {
	t.Helper()
	t.Logf("%s, in %s:\n%s", where, s.cwd, script)
	full := "set -euo pipefail\ncd \"$1\"\n" + script + "\npwd > \"$2\"\n"
	cmd := exec.CommandContext(ctx, "bash", "-c", full, "bash", s.cwd, s.state)
	cmd.Env = s.env
	cmd.WaitDelay = 10 * time.Second
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", where, err, o.String(), e.String())
	}
	cwd, err := os.ReadFile(s.state)
	require.NoError(t, err)
	s.cwd = strings.TrimSpace(string(cwd))
	return o.String()
}

// walkthrough returns the fenced code blocks between the markers of the
// README's text. Every block there must be sh, go or text, so that none is
// silently left out of the run.
func walkthrough(readme string) ([]block, error) {
	var (
		blocks  []block
		cur     *block
		body    strings.Builder
		inside  bool
		found   bool
		lineNum int
	)
	sc := bufio.NewScanner(strings.NewReader(readme))
	for sc.Scan() {
		lineNum++
		line := sc.Text()
		switch {
		case cur != nil && strings.TrimSpace(line) == "```":
			cur.body = body.String()
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(line + "\n")
		case strings.TrimSpace(line) == beginMarker:
			inside, found = true, true
		case strings.TrimSpace(line) == endMarker:
			if !inside {
				return nil, fmt.Errorf("line %d: %s before %s", lineNum, endMarker, beginMarker)
			}
			inside = false
		case inside && strings.HasPrefix(line, "```"):
			lang := strings.TrimSpace(strings.TrimPrefix(line, "```"))
			if lang != "sh" && lang != "go" && lang != "text" {
				return nil, fmt.Errorf("line %d: a %q block in the walkthrough; it runs only sh, go and text blocks", lineNum, lang)
			}
			cur = &block{lang: lang, line: lineNum}
			body.Reset()
		}
	}
	switch {
	case sc.Err() != nil:
		return nil, sc.Err()
	case !found:
		return nil, fmt.Errorf("no %s line in README.md", beginMarker)
	case inside || cur != nil:
		return nil, fmt.Errorf("the walkthrough does not end: a code block or %s is missing", endMarker)
	}
	return blocks, nil
}

// fileName returns the file a go block names on its first line, as
// "// tasks/main.go", if that is a path inside the walkthrough's directory.
func fileName(body string) (string, bool) {
	first, _, _ := strings.Cut(body, "\n")
	name, ok := strings.CutPrefix(first, "// ")
	if !ok || !strings.HasSuffix(name, ".go") || !filepath.IsLocal(name) {
		return "", false
	}
	return filepath.FromSlash(name), true
}

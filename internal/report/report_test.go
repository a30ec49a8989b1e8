package report_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"

	"github.com/safepool/safepool/internal/report"
)

// render renders testdata's stats and killed files.
func render(t testing.TB) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, report.Render(&b, report.Options{Stats: "testdata/stats.jsonl", Killed: "testdata/killed.jsonl", Title: "test run"}))
	return b.String()
}

func TestRender(t *testing.T) {
	page := render(t)

	// Valid HTML: it parses, with the elements the page is made of, and
	// every element the tokenizer meets is closed in order.
	doc, err := html.Parse(strings.NewReader(page))
	require.NoError(t, err)
	ids := map[string]bool{}
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		for _, a := range n.Attr {
			if a.Key == "id" {
				ids[a.Val] = true
			}
			require.NotContains(t, []string{"src", "href"}, a.Key, "the page links to nothing")
		}
		if n.Type == html.ElementNode {
			require.NotContains(t, []string{"script", "link", "img", "iframe", "object"}, n.Data, "the page loads nothing")
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	for _, id := range []string{"summary", "timeline", "histogram", "killed"} {
		require.True(t, ids[id], "the page has #%s", id)
	}
	require.Contains(t, page, "default-src 'none'")

	// The killed task: a kill mark for each killed attempt (task 2, and
	// task 3's first attempt), and its reason from --killed.
	require.Equal(t, 2, strings.Count(page, `class="kill"`))
	require.Contains(t, page, "worker killed by SIGKILL while running the task")
	// The retry: task 3's first attempt, linked to its second.
	require.Equal(t, 1, strings.Count(page, `class="retry"`))
	require.Contains(t, page, "task 3, attempt 1: killed")
	require.Contains(t, page, "task 3, attempt 2: ok")
	// Worker 101 died and 103 took its lane: a restart.
	require.Equal(t, 1, strings.Count(page, `class="restart"`))
	require.Contains(t, page, "pid 103 replaced pid 101")
	// The agent's worker has a lane of its own, named after it.
	require.Contains(t, page, "agent-b · worker")
	// The summary counts.
	for _, want := range []string{">tasks</td><td class=\"num\">7<", ">attempts</td><td class=\"num\">7<", "not_run</td><td class=\"num\">1<",
		"lines that are not records</td><td class=\"num\">1<", ">tasks retried</td><td class=\"num\">1<"} {
		require.Contains(t, page, want)
	}
}

func TestRenderEmpty(t *testing.T) {
	path := t.TempDir() + "/empty.jsonl"
	require.NoError(t, writeFile(path, ""))
	var b bytes.Buffer
	require.NoError(t, report.Render(&b, report.Options{Stats: path}))
	require.Contains(t, b.String(), "No attempt ran.")
	require.Contains(t, b.String(), "</html>")
}

func TestRenderMissing(t *testing.T) {
	var b bytes.Buffer
	err := report.Render(&b, report.Options{Stats: "testdata/none.jsonl"})
	require.ErrorContains(t, err, "no such file")
}

package harness_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/bench/harness"
)

// allowMissingPeers names the environment variable that lets the tests pass
// on a machine without the Python peers. Without it a missing peer fails
// them: a comparison that quietly loses a row is not a comparison.
const allowMissingPeers = "SAFEPOOL_BENCH_ALLOW_MISSING_PEERS"

// requirePeers fails the test when a peer did not run, unless
// allowMissingPeers is set, and reports whether every peer ran.
func requirePeers(t *testing.T, res *harness.Results) bool {
	t.Helper()
	var missing []string
	for _, p := range harness.Peers {
		if !res.Peers.Found(p) {
			missing = append(missing, p+": "+res.Peers.Missing[p])
		}
	}
	if len(missing) == 0 {
		return true
	}
	if os.Getenv(allowMissingPeers) != "" {
		t.Logf("peers missing, allowed by %s: %s", allowMissingPeers, strings.Join(missing, "; "))
		return false
	}
	t.Fatalf("the Python peers are missing:\n  %s\ninstall them (Debian, as root) with\n  %s\nor set %s=1 to run without them",
		strings.Join(missing, "\n  "), harness.InstallPeers, allowMissingPeers)
	return false
}

// TestKillMatrix runs the kill matrix and the memory scenario in quick mode:
// real SIGKILLs of real workers of safepool under each policy and of every
// Python pool. It checks safepool's rows in full and that every Python
// pool has a row with one of the outcomes, and that the standard library's
// pools still do what the README says they do. It takes about half a
// minute: the Python pools that hang are each given the quick mode's
// HangTimeout.
func TestKillMatrix(t *testing.T) {
	opts := harness.QuickOptions()
	opts.Only = []string{harness.ScenarioKills, harness.ScenarioOOM}
	opts.Log = testLog{t}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := harness.Run(ctx, opts)
	require.NoError(t, err)
	require.Empty(t, res.Failures, "every scenario must run to its end")
	peers := requirePeers(t, res)

	rows := map[string]harness.KillRow{}
	for _, k := range append(append([]harness.KillRow{}, res.Kills...), res.OOM...) {
		key := k.System + "/" + k.Policy + "/" + k.Mode
		require.NotContains(t, rows, key, "two rows for %s", key)
		rows[key] = k
		require.Contains(t, []string{harness.OutcomeCompleted, harness.OutcomeHung, harness.OutcomeFailed}, k.Outcome, key)
		require.Equal(t, 10, k.Tasks, key)
		require.NotEmpty(t, k.Kill, "%s: nothing stopped the task", key)
	}

	t.Run("safepool", func(t *testing.T) {
		skip := rows["safepool/skip/"]
		require.Equal(t, harness.OutcomeCompleted, skip.Outcome, skip.Detail)
		require.Equal(t, 9, skip.OK)
		require.True(t, skip.InOrder)
		require.True(t, skip.Named, "KilledTasks names the task")
		require.False(t, skip.Retried)
		require.Len(t, skip.Lost, 1)
		require.Equal(t, "killed", skip.Error)

		retry := rows["safepool/retry/"]
		require.Equal(t, harness.OutcomeCompleted, retry.Outcome, retry.Detail)
		require.Equal(t, 10, retry.OK)
		require.True(t, retry.Retried)
		require.Empty(t, retry.Lost)

		abort := rows["safepool/abort/"]
		require.Equal(t, harness.OutcomeFailed, abort.Outcome, abort.Detail)
		require.True(t, abort.Named, "the TaskError names the task")
		for _, k := range []harness.KillRow{skip, retry, abort} {
			require.Equal(t, "usable", k.After, "safepool, %s: the pool must run tasks after a kill", k.Policy)
		}

		capSkip := rows["safepool/skip/memory cap"]
		require.Equal(t, harness.OutcomeCompleted, capSkip.Outcome, capSkip.Detail)
		require.Equal(t, 9, capSkip.OK)
		require.Equal(t, "memory_limit", capSkip.Error)
		capRetry := rows["safepool/retry/memory cap"]
		require.Equal(t, harness.OutcomeCompleted, capRetry.Outcome, capRetry.Detail)
		require.Equal(t, 10, capRetry.OK)
		require.True(t, capRetry.Retried, "Retry.MemoryGrowth runs the task again under a larger cap")
	})

	t.Run("python", func(t *testing.T) {
		systems := []string{"multiprocessing.Pool", "ProcessPoolExecutor"}
		if peers {
			systems = append(systems, "billiard", "pebble", "joblib (loky)")
		}
		for _, s := range systems {
			for _, key := range []string{s + "//", s + "//rlimit", s + "//rss"} {
				require.Contains(t, rows, key, "no row for %s", key)
			}
		}
		// What the README says of the standard library's pools, and what
		// the issues behind it describe.
		require.Equal(t, harness.OutcomeHung, rows["multiprocessing.Pool//"].Outcome, rows["multiprocessing.Pool//"].Detail)
		ppe := rows["ProcessPoolExecutor//"]
		require.Equal(t, harness.OutcomeFailed, ppe.Outcome, ppe.Detail)
		require.Equal(t, "BrokenProcessPool", ppe.Error)
		require.False(t, ppe.Named)
		if peers {
			// pebble fails the killed task's future alone, the one peer
			// that says which task was lost.
			pb := rows["pebble//"]
			require.Equal(t, harness.OutcomeCompleted, pb.Outcome, pb.Detail)
			require.True(t, pb.Named)
			require.Equal(t, "ProcessExpired", pb.Error)
		}
		for key, k := range rows {
			if !strings.HasPrefix(key, "safepool/") {
				require.False(t, k.Retried, "%s: no Python pool re-runs a lost task", key)
			}
		}
	})
}

// TestReadmeComparison checks that the README's comparison table is the
// one the committed kill matrix renders (bench/matrix/results.json): it
// changes only with a run of the harness (make bench, which passes -readme
// README.md).
func TestReadmeComparison(t *testing.T) {
	res, err := harness.Load(filepath.Join("..", "matrix", "results.json"))
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	got, ok := harness.ReadmeTable(readme)
	require.True(t, ok, "README.md has no comparison table between %q and %q", harness.CompareBegin, harness.CompareEnd)
	want := harness.CompareTable(res)
	require.Equal(t, want, got, "README.md's comparison table is not the one bench/results.json gives: run go run ./bench/cmd/safepool-bench -from bench/matrix/results.json -out bench/matrix/RESULTS.md -readme README.md")
	for _, system := range []string{"**safepool** (M)", "`multiprocessing.Pool` (M)", "`ProcessPoolExecutor` (M)", "billiard (M)", "pebble (M)", "joblib / loky (M)"} {
		require.Contains(t, got, "| "+system+" |", "the committed run did not measure %s", system)
	}
}

// TestReadmeTargets checks that the README's targets table is the one the
// committed full run renders (bench/results.json): it changes only with a
// run of the harness (make bench, which passes -readme README.md
// -readme-tables targets).
func TestReadmeTargets(t *testing.T) {
	res, err := harness.Load(filepath.Join("..", "results.json"))
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	got, ok := harness.ReadmeTargets(readme)
	require.True(t, ok, "README.md has no targets table between %q and %q", harness.TargetsBegin, harness.TargetsEnd)
	require.Equal(t, harness.TargetsTable(res), got, "README.md's targets table is not the one bench/results.json gives: run go run ./bench/cmd/safepool-bench -from bench/results.json -out bench/RESULTS.md -readme README.md -readme-tables targets")
	require.Contains(t, got, "| Throughput vs Python Pool.map")
}

func TestUpdateReadme(t *testing.T) {
	res, err := harness.Load(filepath.Join("..", "results.json"))
	require.NoError(t, err)
	matrix, err := harness.Load(filepath.Join("..", "matrix", "results.json"))
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "README.md")
	body := "# x\n\n" + harness.TargetsBegin + "old\n" + harness.TargetsEnd + "\nmiddle\n\n" + harness.CompareBegin + "old\n" + harness.CompareEnd + "tail\n"
	require.NoError(t, os.WriteFile(path, []byte(body), 0o644))

	require.NoError(t, harness.UpdateReadme(path, res, harness.ReadmeTargetsTable))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	got, ok := harness.ReadmeTargets(b)
	require.True(t, ok)
	require.Equal(t, harness.TargetsTable(res), got)
	cmp, ok := harness.ReadmeTable(b)
	require.True(t, ok)
	require.Equal(t, "old\n", cmp, "only the named table changes")

	require.NoError(t, harness.UpdateReadme(path, matrix, harness.ReadmeCompareTable))
	b, err = os.ReadFile(path)
	require.NoError(t, err)
	cmp, _ = harness.ReadmeTable(b)
	require.Equal(t, harness.CompareTable(matrix), cmp)
	require.Contains(t, string(b), "\nmiddle\n")
	require.True(t, strings.HasSuffix(string(b), harness.CompareEnd+"tail\n"))

	// A run without the figures, an unknown table, a README without the
	// block: each is refused, and the README is left as it was.
	require.ErrorContains(t, harness.UpdateReadme(path, &harness.Results{}, harness.ReadmeCompareTable), "no kill matrix")
	require.ErrorContains(t, harness.UpdateReadme(path, &harness.Results{}, harness.ReadmeTargetsTable), "no throughput figures")
	require.ErrorContains(t, harness.UpdateReadme(path, res, "headline"), `no README table "headline"`)
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, b, after)
	bare := filepath.Join(t.TempDir(), "README.md")
	require.NoError(t, os.WriteFile(bare, []byte("# x\n"), 0o644))
	require.ErrorContains(t, harness.UpdateReadme(bare, res, harness.ReadmeTargetsTable), "no \"<!-- targets:begin")
}

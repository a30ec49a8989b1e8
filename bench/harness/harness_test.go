package harness_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/bench/harness"
)

// TestQuickRun runs every scenario in quick mode, with real worker
// processes and real SIGKILLs, and checks both what was measured and the
// report rendered from it. The Python baselines run unless -short is set
// or python3 is missing.
func TestQuickRun(t *testing.T) {
	opts := harness.QuickOptions()
	if raceEnabled {
		// The race detector slows the host and the workers several times
		// over; a worker of the Go guest takes seconds to start. The Go
		// guest runs only where it is needed: kill recovery and the
		// mid-map kill, which kill its slow_square.
		opts.Guests = []string{harness.WATGuest}
		opts.ThroughputN = 5_000
		opts.LatencySamples = 100
		opts.ChaosN = 5_000
		opts.StreamN = 20_000
		opts.Kills = 1
		opts.WarmStarts = 1
	}
	_, noPython := exec.LookPath("python3")
	if testing.Short() {
		opts.Python = "none"
	}
	// The kill matrix and the memory scenario have a test of their own,
	// TestKillMatrix; the cluster's scenario starts servers and agents for
	// seconds, and the cluster's own tests (pool, cluster) cover its paths.
	for _, s := range harness.Scenarios {
		if s != harness.ScenarioKills && s != harness.ScenarioOOM && s != harness.ScenarioCluster {
			opts.Only = append(opts.Only, s)
		}
	}
	// The peers (billiard, pebble, joblib) run in the full harness; their
	// kill behaviour has its own test, TestKillMatrix. Here they would add
	// their start-ups (loky's takes seconds) to every scenario.
	opts.PeerPython = "none"
	opts.Log = testLog{t}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := harness.Run(ctx, opts)
	require.NoError(t, err)
	require.Empty(t, res.Failures, "every scenario must run to its end")
	wantPython := !testing.Short() && noPython == nil
	require.Equal(t, wantPython, res.Python.Ran, res.Python.Reason)
	wantPeers := false
	if wantPeers {
		wantPeers = requirePeers(t, res)
	}

	t.Run("throughput", func(t *testing.T) {
		systems := map[string]int{}
		for _, r := range res.Throughput {
			systems[r.System]++
			require.True(t, r.Correct, "%s %s: results not checked", r.System, r.Guest)
			require.Positive(t, r.Elapsed)
			require.Positive(t, r.Tasks)
		}
		require.Equal(t, 1, systems[harness.SysNative])
		require.Equal(t, len(opts.Guests), systems[harness.SysInProcess])
		require.Equal(t, len(opts.Guests), systems[harness.SysSafepool])
		require.Equal(t, len(opts.Guests), systems[harness.SysSafepoolFresh], "a fresh-instance Map row per guest")
		if wantPython {
			require.Equal(t, 1, systems[harness.SysPoolMap])
			require.Equal(t, 1, systems[harness.SysExecMap])
		}
		if wantPeers {
			for _, name := range []string{"billiard Pool.map", "pebble ProcessPool.map", "joblib (loky) Parallel"} {
				require.Equal(t, 1, systems[name], "the peer %q has no throughput row", name)
			}
		}
	})
	t.Run("latency", func(t *testing.T) {
		n, fresh := 0, 0
		for _, l := range res.Latency {
			require.Positive(t, l.P50, l.System)
			require.LessOrEqual(t, l.P50, l.P99, l.System)
			require.LessOrEqual(t, l.P99, l.Max, l.System)
			switch l.System {
			case harness.SysSafepool:
				n++
				require.Equal(t, opts.LatencySamples, l.Samples)
			case harness.SysSafepoolFresh:
				fresh++
				require.Equal(t, opts.LatencySamples, l.Samples)
			}
		}
		require.Equal(t, len(opts.Guests), n)
		require.Equal(t, len(opts.Guests), fresh, "a fresh-instance row per guest")
	})
	t.Run("recovery", func(t *testing.T) {
		require.Len(t, res.Recovery, 4)
		require.Equal(t, 1, res.Recovery[2].Spares, "the third run has a spare")
		require.Len(t, res.Recovery[2].Retry, opts.Kills, "with a spare too, the killed task starts again once per kill")
		for _, rec := range res.Recovery {
			require.Len(t, rec.Full, opts.Kills, rec.Mode)
			for _, d := range append(append([]time.Duration{}, rec.Retry...), rec.Full...) {
				require.Positive(t, d)
				require.Less(t, d, 10*time.Second)
			}
		}
		require.Len(t, res.Recovery[0].Retry, opts.Kills, "the killed task must start again once per kill")
	})
	t.Run("startup", func(t *testing.T) {
		var warm, cold int
		for _, s := range res.Startup {
			if s.System != harness.SysSafepool {
				continue
			}
			require.NotEmpty(t, s.Times)
			switch s.Cache {
			case "warm":
				warm++
				require.Equal(t, make([]int, len(s.Times)), s.Compiles, "a warm start-up must not compile")
			case "cold":
				cold++
				for _, c := range s.Compiles {
					require.Equal(t, 1, c, "a cold start-up compiles once, not once per worker")
				}
				require.Positive(t, s.CacheFiles)
			}
		}
		require.Equal(t, len(opts.Guests), warm)
		require.Equal(t, len(opts.ColdGuests), cold)
	})
	t.Run("metrics", func(t *testing.T) {
		require.Len(t, res.Metrics, len(opts.Guests))
		for _, m := range res.Metrics {
			require.True(t, m.Correct, "%s: results and the collector's counts checked", m.Guest)
			require.Len(t, m.On, len(m.Off), m.Guest)
			require.Positive(t, m.Ratio(), m.Guest)
		}
	})
	t.Run("chaos", func(t *testing.T) {
		require.Len(t, res.Chaos, len(opts.Guests))
		for _, c := range res.Chaos {
			require.Positive(t, c.Kills, c.Guest)
			if c.Correct {
				require.Positive(t, c.Ratio())
			} else {
				// The pool may give up under this much killing; the
				// report must then say how.
				require.NotEmpty(t, c.Detail)
			}
		}
		wat := res.Chaos[len(res.Chaos)-1]
		require.Equal(t, harness.WATGuest, wat.Guest)
		require.True(t, wat.Correct, "the WAT guest's workers restart fast enough to survive: %s", wat.Detail)
	})
	t.Run("memory", func(t *testing.T) {
		n := 0
		for _, m := range res.IdleRSS {
			if m.System == harness.SysSafepool {
				n++
				require.Len(t, m.KiB, opts.Workers)
			}
			for _, k := range m.KiB {
				require.Positive(t, k)
			}
		}
		require.Equal(t, len(opts.Guests), n)
		s := res.Stream
		require.NotNil(t, s)
		require.True(t, s.Correct)
		require.Equal(t, opts.StreamN, s.Items)
		require.Positive(t, s.Samples)
		require.GreaterOrEqual(t, s.PeakKiB, s.StartKiB)
	})
	t.Run("cli", func(t *testing.T) {
		systems := map[string]int{}
		for _, c := range res.CLI {
			systems[c.System]++
			require.True(t, c.Correct, "%s %s: output not checked", c.System, c.Guest)
			require.Contains(t, opts.CLILines, c.Lines)
			require.Positive(t, c.Elapsed)
			require.Positive(t, c.Samples, "%s %s: no VmHWM sample", c.System, c.Guest)
			require.Positive(t, c.PeakKiB)
			if c.System == harness.SysCLI {
				// Its workers live from its start to its end. Python's
				// pool may live for less than a sample in quick mode.
				require.Equal(t, opts.Workers, c.Workers, "%s: its workers were not found", c.Guest)
				require.Positive(t, c.WorkerPeakKiB)
			}
			require.Positive(t, c.CPU)
		}
		require.Equal(t, len(opts.Guests)*len(opts.CLILines), systems[harness.SysCLI])
		if wantPython {
			require.Equal(t, len(opts.CLILines), systems[harness.SysPyCLI])
		} else {
			require.Zero(t, systems[harness.SysPyCLI])
		}
	})

	t.Run("report", func(t *testing.T) {
		var md bytes.Buffer
		require.NoError(t, harness.WriteReport(&md, res, "results.svg"))
		report := md.String()
		require.Contains(t, report, "![Throughput and latency per system](results.svg)")
		last := -1
		for i, h := range harness.Sections {
			at := strings.Index(report, "\n"+h)
			require.Greater(t, at, last, "section %q missing or out of order", h)
			last = at
			// Every section has a table of its own.
			body := report[at:]
			if i+1 < len(harness.Sections) {
				body = body[:strings.Index(body, "\n"+harness.Sections[i+1])]
			}
			if strings.Contains(body, "Not run in this run") {
				continue // the kill matrix and the memory scenario: TestKillMatrix
			}
			require.Contains(t, body, "| --- |", "section %q has no table", h)
		}
		if wantPeers {
			require.NotContains(t, report, "missing**")
		}
		require.NotContains(t, report, "## Failures")
		require.NotContains(t, report, "scenario failed")
		for _, tg := range harness.Targets(res) {
			if tg.Check || tg.Scope == "Go guest (tasks)" && strings.HasPrefix(tg.Name, "Cold") {
				continue // quick mode compiles only the WAT guest cold
			}
			if strings.HasPrefix(tg.Name, "Cluster") || strings.HasPrefix(tg.Name, "Agent SIGKILL") || strings.HasPrefix(tg.Name, "Remote worker") {
				require.Nil(t, tg.Met, "%s: the quick run leaves the cluster out", tg.Name)
				continue
			}
			if strings.Contains(tg.Name, "Python") && !wantPython {
				require.Nil(t, tg.Met, tg.Name)
				continue
			}
			if strings.HasPrefix(tg.Name, "Metrics cost") && tg.Met == nil {
				// A few quick rounds on a loaded machine may not tell.
				require.Contains(t, tg.Measured, "too noisy to judge", tg.Scope)
				continue
			}
			require.NotNil(t, tg.Met, "target %q on %s was not judged: %s", tg.Name, tg.Scope, tg.Measured)
		}
		if !wantPython {
			require.Contains(t, report, "Python baselines: ")
		}

		var svg bytes.Buffer
		require.NoError(t, harness.WriteChart(&svg, res))
		requireWellFormedXML(t, svg.Bytes())
		require.Equal(t, len(res.Throughput)+len(res.Latency), strings.Count(svg.String(), `class="bar-label"`), "one labelled bar per system")

		// Results saved and loaded render the same report.
		path := filepath.Join(t.TempDir(), "results.json")
		require.NoError(t, res.Save(path))
		again, err := harness.Load(path)
		require.NoError(t, err)
		var md2 bytes.Buffer
		require.NoError(t, harness.WriteReport(&md2, again, "results.svg"))
		require.Equal(t, report, md2.String())
	})
}

func requireWellFormedXML(t *testing.T, b []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	root := ""
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	require.Equal(t, "svg", root)
}

// testLog sends the harness's progress lines to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

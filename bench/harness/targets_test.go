package harness_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/bench/harness"
)

// findTarget returns the target called name on scope, failing the test
// when Targets has none.
func findTarget(t *testing.T, ts []harness.Target, name, scope string) harness.Target {
	t.Helper()
	for _, tg := range ts {
		if tg.Name == name && tg.Scope == scope {
			return tg
		}
	}
	t.Fatalf("no target %q on %s in %+v", name, scope, ts)
	return harness.Target{}
}

// The start-up row is judged on the median of the warm start-ups measured,
// against 100 ms; the idle-RSS row on the largest worker, against 30 MB
// (29,296 KiB). Each is met on one side of its goal and not on the other,
// and names the figure it was judged on.
func TestStartupAndIdleRSSVerdictsFollowTheFigures(t *testing.T) {
	const (
		startup = "Start-up until the first result, warm cache, p50"
		idle    = "Idle worker RSS"
		scope   = "Go guest (tasks)"
	)
	judge := func(times []time.Duration, kib []int64) (harness.Target, harness.Target) {
		r := &harness.Results{
			Options: harness.Options{Guests: []string{harness.GoGuest}},
			Startup: []harness.Startup{{System: harness.SysSafepool, Guest: harness.GoGuest, Cache: "warm", Workers: 2, Times: times}},
			IdleRSS: []harness.IdleRSS{{System: harness.SysSafepool, Guest: harness.GoGuest, KiB: kib}},
		}
		ts := harness.Targets(r)
		return findTarget(t, ts, startup, scope), findTarget(t, ts, idle, scope)
	}
	ms := time.Millisecond

	s, m := judge([]time.Duration{300 * ms, 90 * ms, 95 * ms}, []int64{29_296, 20_000})
	require.NotNil(t, s.Met)
	require.True(t, *s.Met, "median 95 ms is within 100 ms, whatever the slowest start-up: %+v", s)
	require.Equal(t, "95.0 ms", s.Measured)
	require.NotNil(t, m.Met)
	require.True(t, *m.Met, "29,296 KiB is 30 MB: %+v", m)
	require.Contains(t, m.Measured, "28.6 MiB")

	s, m = judge([]time.Duration{60 * ms, 101 * ms, 120 * ms}, []int64{10_000, 29_297})
	require.NotNil(t, s.Met)
	require.False(t, *s.Met, "median 101 ms is over 100 ms, however fast the quickest: %+v", s)
	require.Equal(t, "101 ms", s.Measured)
	require.NotNil(t, m.Met)
	require.False(t, *m.Met, "the largest worker is over 30 MB: %+v", m)

	// Without figures (the scenario did not run) neither row is judged.
	ts := harness.Targets(&harness.Results{Options: harness.Options{Guests: []string{harness.GoGuest}, Only: []string{harness.ScenarioChaos}}})
	for _, name := range []string{startup, idle} {
		tg := findTarget(t, ts, name, scope)
		require.Nil(t, tg.Met, name)
		require.Equal(t, "not run", tg.Measured, name)
	}
}

// The fresh-instance row is judged on the ratio of the fresh pool's Apply
// p50 to the shared pool's in the same run, against 3×, for each guest;
// without both rows it is not judged.
func TestFreshInstanceVerdictFollowsTheRatio(t *testing.T) {
	const name = "Fresh instance: Apply p50 ÷ a shared instance's"
	us := time.Microsecond
	judge := func(shared, fresh time.Duration) harness.Target {
		r := &harness.Results{
			Options: harness.Options{Guests: []string{harness.GoGuest}},
			Latency: []harness.Latency{
				{System: harness.SysSafepool, Guest: harness.GoGuest, P50: shared},
				{System: harness.SysSafepoolFresh, Guest: harness.GoGuest, P50: fresh},
			},
		}
		return findTarget(t, harness.Targets(r), name, "Go guest (tasks)")
	}
	tg := judge(20*us, 60*us)
	require.NotNil(t, tg.Met)
	require.True(t, *tg.Met, "3.00× is within 3×: %+v", tg)
	require.Equal(t, "3.00× (60.0 µs vs 20.0 µs)", tg.Measured)
	tg = judge(20*us, 61*us)
	require.NotNil(t, tg.Met)
	require.False(t, *tg.Met, "3.05× is over 3×: %+v", tg)

	ts := harness.Targets(&harness.Results{Options: harness.Options{Guests: []string{harness.GoGuest}, Only: []string{harness.ScenarioChaos}}})
	tg = findTarget(t, ts, name, "Go guest (tasks)")
	require.Nil(t, tg.Met)
	require.Equal(t, "not run", tg.Measured)
}

// The fresh-instance Map row is judged on the ratio of the fresh pool's
// time per task to the shared pool's in the same run, against 3×, for
// each guest; without both rows it is not judged.
func TestFreshMapVerdictFollowsTheRatio(t *testing.T) {
	const name = "Fresh instance: Map time per task ÷ a shared instance's"
	judge := func(shared, fresh time.Duration) harness.Target {
		r := &harness.Results{
			Options: harness.Options{Guests: []string{harness.GoGuest}},
			Throughput: []harness.Throughput{
				{System: harness.SysSafepool, Guest: harness.GoGuest, Tasks: 1000, Elapsed: shared},
				{System: harness.SysSafepoolFresh, Guest: harness.GoGuest, Tasks: 500, Elapsed: fresh},
			},
		}
		return findTarget(t, harness.Targets(r), name, "Go guest (tasks)")
	}
	// 2 ms over 1000 tasks is 2 µs a task; the fresh pool ran 500.
	tg := judge(2*time.Millisecond, 3*time.Millisecond)
	require.NotNil(t, tg.Met)
	require.True(t, *tg.Met, "3.00× is within 3×: %+v", tg)
	require.Equal(t, "3.00× (6.00 vs 2.00 µs/task)", tg.Measured)
	tg = judge(2*time.Millisecond, 3050*time.Microsecond)
	require.NotNil(t, tg.Met)
	require.False(t, *tg.Met, "3.05× is over 3×: %+v", tg)

	ts := harness.Targets(&harness.Results{Options: harness.Options{Guests: []string{harness.GoGuest}, Only: []string{harness.ScenarioLatency}}})
	tg = findTarget(t, ts, name, "Go guest (tasks)")
	require.Nil(t, tg.Met)
	require.Equal(t, "not run", tg.Measured)

	// Results recorded before the harness measured it: no row.
	ts = harness.Targets(&harness.Results{
		Options:    harness.Options{Guests: []string{harness.GoGuest}},
		Throughput: []harness.Throughput{{System: harness.SysSafepool, Guest: harness.GoGuest, Tasks: 1000, Elapsed: time.Millisecond}},
	})
	for _, tg := range ts {
		require.NotEqual(t, name, tg.Name, "a row for results that predate it: %+v", tg)
	}
}

// The throughput row against Python's Pool.map asks the Go SDK guest to be
// at least as fast (2× is its stretch) and the WAT guest twice as fast;
// when in-process wazero on the same guest is already slower than the
// goal, the row says that no pool can reach it here.
func TestVsPythonGoalsAndReach(t *testing.T) {
	const name = "Throughput vs Python Pool.map (default chunking)"
	// Tasks of 1000 each: an Elapsed of 1 ms is 1 µs a task.
	judge := func(guest string, python, pool, inProcess time.Duration) harness.Target {
		r := &harness.Results{
			Options: harness.Options{Guests: []string{guest}},
			Throughput: []harness.Throughput{
				{System: harness.SysPoolMap, Tasks: 1000, Elapsed: python},
				{System: harness.SysSafepool, Guest: guest, Tasks: 1000, Elapsed: pool},
				{System: harness.SysInProcess, Guest: guest, Tasks: 1000, Elapsed: inProcess},
			},
		}
		return findTarget(t, harness.Targets(r), name, map[string]string{harness.GoGuest: "Go guest (tasks)", harness.WATGuest: "WAT guest (wsquare)"}[guest])
	}
	ms := time.Millisecond

	// The Go guest at 1.25× Python meets its goal of 1×, not its stretch.
	tg := judge(harness.GoGuest, 1250*time.Microsecond, ms, 500*time.Microsecond)
	require.NotNil(t, tg.Met)
	require.True(t, *tg.Met, "1.25× is at least 1×: %+v", tg)
	require.Equal(t, "≥ 1× (stretch: 2×)", tg.Goal)
	require.Equal(t, "1.25× (1.00 vs 1.25 µs/task)", tg.Measured)

	// The WAT guest at the same 1.25× misses its 2×.
	tg = judge(harness.WATGuest, 1250*time.Microsecond, ms, 500*time.Microsecond)
	require.NotNil(t, tg.Met)
	require.False(t, *tg.Met, "1.25× is under 2×: %+v", tg)
	require.Equal(t, "≥ 2×", tg.Goal)
	require.NotContains(t, tg.Measured, "out of reach", "in-process (0.50) is faster than the goal (0.625): %+v", tg)

	// In process slower than the goal: out of reach, and still judged.
	tg = judge(harness.WATGuest, 300*time.Microsecond, 800*time.Microsecond, 180*time.Microsecond)
	require.NotNil(t, tg.Met)
	require.False(t, *tg.Met)
	require.Equal(t, "0.38× (0.80 vs 0.30 µs/task); out of reach for any pool here: the goal is 0.15 µs/task and in-process wazero alone takes 0.18", tg.Measured)
	tg = judge(harness.GoGuest, 330*time.Microsecond, 1530*time.Microsecond, 450*time.Microsecond)
	require.Contains(t, tg.Measured, "the goal is 0.33 µs/task and in-process wazero alone takes 0.45")
}

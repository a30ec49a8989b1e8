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

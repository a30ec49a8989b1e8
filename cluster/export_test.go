package cluster

import (
	"time"

	"github.com/safepool/safepool/internal/remote"
)

// SetProbeWait shortens the wait for the advisory probe; the func it
// returns restores it.
func SetProbeWait(d time.Duration) func() {
	old := probeWait.Swap(int64(d))
	return func() { probeWait.Store(old) }
}

// WaitProbe waits until c's advisory probe is over and says whether the
// advisories reach it.
func WaitProbe(c remote.Coordinator) bool {
	co := c.(*coordinator)
	<-co.probed
	return co.advisories.Load()
}

// WithoutAdvisories returns o for a pool that does not subscribe to
// disconnect advisories: it learns of a lost agent from its heartbeats.
func WithoutAdvisories(o Options) Options {
	o.noAdvisories = true
	return o
}

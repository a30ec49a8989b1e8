package wazero

import (
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/sys"
)

// A resettable instance's monotonic clock is rewound by each reset to
// the last reading the guest took before its snapshot: a task on a reset
// instance finds no time gone since the guest last looked, and the clock
// moves on from there in real time, as on an instance that had just
// started. Nothing the guest kept could tell, since every byte that
// remembers an earlier reading is reset with it. A Go guest then finds,
// at the end of each task, that little time has passed since the runtime
// last yielded (guest/batch.go, yield) and does not yield: a yield lets
// the collector's workers run, for a heap the reset throws away. That
// saves 2–3 µs a task, most of a small Go task's cost. The wall clock
// stays real: it is not monotonic anyway, and a task may want the date.

// epoch is the origin of the instances' monotonic clocks.
var epoch = time.Now()

// rewindable is a monotonic clock that can be set back.
type rewindable struct {
	shift atomic.Int64 // nanoseconds subtracted from the real clock
	last  atomic.Int64 // the last reading
}

// nanotime is the clock's reading, in nanoseconds, for
// wazero.ModuleConfig.WithNanotime.
func (c *rewindable) nanotime() int64 {
	now := int64(time.Since(epoch)) - c.shift.Load()
	c.last.Store(now)
	return now
}

// rewind makes the clock read at again, and move on from there.
func (c *rewindable) rewind(at int64) { c.shift.Store(int64(time.Since(epoch)) - at) }

// clockResolution is the resolution the clock reports, as wazero's own
// system clock does (sys.ClockResolution is nanoseconds).
const clockResolution sys.ClockResolution = 1

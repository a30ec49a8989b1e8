package pool

import "github.com/safepool/safepool/internal/hostconn"

// Spare workers (Config.Spares) wait, started and idle, in l.spares. A
// driver whose worker died takes one instead of starting a worker, and the
// keeper starts a new spare in the background.

// keepSpares keeps Config.Spares workers in l.spares until the dispatcher stops.
func (l *local) keepSpares() {
	defer l.wg.Done()
	defer l.drainSpares()
	// Spares are extras: the pool's own workers start first.
	select {
	case <-l.ready:
	case <-l.quit:
		return
	}
	for {
		for len(l.spares) < cap(l.spares) {
			if l.stopping() {
				return
			}
			wk, err := l.startWorker()
			if err != nil {
				continue // stopping() ends the loop when it must
			}
			l.spares <- wk // never blocks: only this goroutine adds
		}
		select {
		case <-l.spareTaken:
		case <-l.quit:
			return
		}
	}
}

// takeSpare returns a live spare, or nil when none is ready.
func (l *local) takeSpare() *hostconn.Conn {
	for {
		var wk *hostconn.Conn
		select {
		case wk = <-l.spares:
		default:
			return nil
		}
		select {
		case l.spareTaken <- struct{}{}:
		default:
		}
		select {
		case <-wk.Exited():
			// Killed while it waited (the OOM killer does not spare idle
			// processes): report it and try the next.
			wk.Release()
			l.emit(Event{Kind: EventWorkerExit, WorkerPID: wk.PID(), Reason: "spare worker " + wk.Exit().String(), Cause: deathCause(wk.Exit(), false, false), Signal: wk.Exit().SignalName()})
		default:
			l.emit(Event{Kind: EventSparePromoted, WorkerPID: wk.PID()})
			return wk
		}
	}
}

// drainSpares stops the spares when the dispatcher stops.
func (l *local) drainSpares() {
	for {
		select {
		case wk := <-l.spares:
			l.stopWorker(wk, "spare worker retired")
		default:
			return
		}
	}
}

package pool

import "github.com/safepool/safepool/internal/worker"

// Spare workers (Config.Spares) wait, started and idle, in p.spares. A
// driver whose worker died takes one instead of starting a worker, and the
// keeper starts a new spare in the background.

// keepSpares keeps Config.Spares workers in p.spares until the pool stops.
func (p *Pool) keepSpares() {
	defer p.wg.Done()
	defer p.drainSpares()
	// Spares are extras: the pool's own workers start first.
	select {
	case <-p.ready:
	case <-p.quit:
		return
	}
	for {
		for len(p.spares) < cap(p.spares) {
			if p.stopping() {
				return
			}
			wk, err := p.startWorker()
			if err != nil {
				continue // stopping() ends the loop when it must
			}
			p.spares <- wk // never blocks: only this goroutine adds
		}
		select {
		case <-p.spareTaken:
		case <-p.quit:
			return
		}
	}
}

// takeSpare returns a live spare, or nil when none is ready.
func (p *Pool) takeSpare() *worker.Worker {
	for {
		var wk *worker.Worker
		select {
		case wk = <-p.spares:
		default:
			return nil
		}
		select {
		case p.spareTaken <- struct{}{}:
		default:
		}
		select {
		case <-wk.Process().Exited():
			// Killed while it waited (the OOM killer does not spare idle
			// processes): report it and try the next.
			wk.Release()
			p.emit(Event{Kind: EventWorkerExit, WorkerPID: wk.PID(), Reason: "spare worker " + wk.Process().Exit().String()})
		default:
			p.emit(Event{Kind: EventSparePromoted, WorkerPID: wk.PID()})
			return wk
		}
	}
}

// drainSpares stops the spares when the pool stops.
func (p *Pool) drainSpares() {
	for {
		select {
		case wk := <-p.spares:
			p.stopWorker(wk, "spare worker retired")
		default:
			return
		}
	}
}

package pool

// Snapshot is what a pool is doing at one moment; see [Pool.Snapshot].
type Snapshot struct {
	// Queued is how many tasks wait in the pool's queue. Retries waiting
	// out their backoff are not counted.
	Queued int
	// InFlight is how many tasks were sent to workers and have no result
	// yet, Running included.
	InFlight int
	// Running is how many tasks a worker is running now.
	Running int
	// Workers holds the PID of each worker slot's live worker, 0 where
	// none is up (it died, or is starting). Spare workers are not listed.
	Workers []int
}

// Snapshot returns the pool's queue and workers as they are now. It takes
// each worker slot's lock briefly and is meant to be called about once a
// second (a metrics scrape), not per task. It is safe for concurrent use.
func (p *Pool) Snapshot() Snapshot {
	p.q.mu.Lock()
	s := Snapshot{Queued: p.q.count}
	p.q.mu.Unlock()
	if d, ok := p.disp.(interface{ snapshot(*Snapshot) }); ok {
		d.snapshot(&s)
	}
	return s
}

// snapshot adds the drivers' workers and tasks in flight to s.
func (l *local) snapshot(s *Snapshot) {
	for _, d := range l.drivers {
		d.mu.Lock()
		pid := 0
		if d.wk != nil {
			pid = d.wk.PID()
			if id, _ := d.wk.Running(); id != 0 {
				s.Running++
			}
		}
		d.pending(func(*job) { s.InFlight++ })
		d.mu.Unlock()
		s.Workers = append(s.Workers, pid)
	}
}

package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/safepool/safepool/pool"
)

// batchSize is how many tasks cross into the guest per safepool_batch call
// in process: the pool's default batch size.
const batchSize = 256

// tpSystem is one system of the throughput scenario, set up once and run
// once per round.
type tpSystem struct {
	row Throughput
	run func(round int) (tpRun, error)
}

// tpRun is what one run measured.
type tpRun struct {
	wall, hostCPU, workerCPU time.Duration
}

// timed runs fn and measures its wall and CPU time.
func timed(fn func() error) (tpRun, error) { return timedBy(childrenCPU, fn) }

// timedBy is timed with the workers' CPU time read by workerCPU.
func timedBy(workerCPU func() map[int]time.Duration, fn func() error) (tpRun, error) {
	workers, cpu := workerCPU(), selfCPU()
	start := time.Now()
	err := fn()
	return tpRun{wall: time.Since(start), hostCPU: selfCPU() - cpu, workerCPU: cpuSince(workers, workerCPU())}, err
}

// throughput is scenario 1: square over ThroughputN integers on every
// system (the FreshInstance pool over at most freshMapN of them), with
// Workers workers or goroutines. The systems take turns,
// Rounds times, so that a burst of load from elsewhere on the machine hits
// them alike; each keeps its best run.
func (b *bench) throughput(ctx context.Context) error {
	n := b.opts.ThroughputN
	inputs := decimals(n)
	out := make([][]byte, n)

	systems := []*tpSystem{{
		row: Throughput{System: SysNative, Tasks: n, Note: fmt.Sprintf("%d goroutines; parse, square, format", b.opts.Workers)},
		run: func(int) (tpRun, error) {
			clear(out)
			return timed(func() error {
				return spread(n, b.opts.Workers, batchSize, func(_, lo, hi int) error {
					for i := lo; i < hi; i++ {
						out[i] = nativeSquare(nil, inputs[i])
					}
					return nil
				})
			})
		},
	}}
	for _, g := range b.opts.Guests {
		hosts, closeHosts, err := b.wasmHosts(ctx, g, inputs)
		if err != nil {
			return err
		}
		defer closeHosts()
		systems = append(systems, &tpSystem{
			row: Throughput{System: SysInProcess, Guest: g, Tasks: n,
				Note: fmt.Sprintf("%d goroutines, one runtime and instance each; safepool_batch of %d", b.opts.Workers, batchSize)},
			run: func(int) (tpRun, error) {
				clear(out)
				return timed(func() error {
					return spread(n, b.opts.Workers, batchSize, func(w, lo, hi int) error {
						return hosts[w].runBatch("square", inputs[lo:hi], out[lo:hi])
					})
				})
			},
		})

		p, err := b.newPool(g, nil)
		if err != nil {
			return err
		}
		defer closePool(p)
		shared := Throughput{System: SysSafepool, Guest: g, Tasks: n, Note: fmt.Sprintf("Map on %d workers, default config", b.opts.Workers)}
		s, err := b.mapSystem(ctx, p, shared, inputs, out, true)
		if err != nil {
			return err
		}
		systems = append(systems, s)

		fresh, err := b.newPool(g, func(c *pool.Config) { c.FreshInstance = true })
		if err != nil {
			return err
		}
		defer closePool(fresh)
		m := min(n, freshMapN)
		row := Throughput{System: SysSafepoolFresh, Guest: g, Tasks: m,
			Note: fmt.Sprintf("Map of the first %s inputs on %d workers with FreshInstance: each task starts from the instance's state after start-up (reset copy-on-write under wazero), one call a task instead of safepool_batch", fmtCount(m), b.opts.Workers)}
		if s, err = b.mapSystem(ctx, fresh, row, inputs[:m], out[:m], false); err != nil {
			return err
		}
		systems = append(systems, s)
	}

	for round := range b.opts.Rounds {
		for _, s := range systems {
			b.waitQuiet()
			m, err := s.run(round)
			if err == nil {
				err = checkSquares(func(i int) []byte { return out[i] }, s.row.Tasks)
			}
			if err != nil {
				return fmt.Errorf("%s %s: %w", s.row.System, s.row.Guest, err)
			}
			s.row.Correct = true
			if len(s.row.Runs) == 0 || m.wall < slices.Min(s.row.Runs) {
				s.row.Elapsed, s.row.HostCPU, s.row.WorkerCPU = m.wall, m.hostCPU, m.workerCPU
			}
			s.row.Runs = append(s.row.Runs, m.wall)
		}
		if b.py.enabled() {
			b.waitQuiet()
			if py := b.python(ScenarioThroughput); py != nil {
				b.keepBest(py.Throughput)
			}
		}
		if b.peer.enabled() {
			b.waitQuiet()
			if out := b.peers(ScenarioThroughput); out != nil {
				b.keepBest(out.Throughput)
			}
		}
	}
	for _, s := range systems {
		b.res.Throughput = append(b.res.Throughput, s.row)
	}
	b.res.Throughput = append(b.res.Throughput, b.pyThroughput...)
	return nil
}

// freshMapN is the most tasks the FreshInstance Map runs: at several
// microseconds a task, the full throughput map would take most of the
// scenario's time, and the figure per task is the same.
const freshMapN = 200_000

// mapSystem is the throughput system that runs Map of square over inputs
// on p, the row it fills, after a map that warms every worker up. The
// outputs go to out, cleared first, and profile has the first round write
// a CPU profile of the host.
func (b *bench) mapSystem(ctx context.Context, p *pool.Pool, row Throughput, inputs, out [][]byte, profile bool) (*tpSystem, error) {
	if _, err := p.Map(ctx, "square", inputs[:min(len(inputs), 10_000)]); err != nil { // warm up
		return nil, err
	}
	return &tpSystem{
		row: row,
		run: func(round int) (tpRun, error) {
			clear(out)
			stop := func() {}
			if profile && round == 0 { // one profile per guest is enough
				var err error
				if stop, err = b.startProfile("host-" + row.Guest + ".pprof"); err != nil {
					return tpRun{}, err
				}
			}
			var rs []pool.Result
			m, err := timed(func() (err error) {
				rs, err = p.Map(ctx, "square", inputs)
				return err
			})
			stop()
			if err != nil {
				return m, err
			}
			for i := range rs {
				if rs[i].Status != pool.StatusOK {
					return m, fmt.Errorf("task %d: %s: %s", i, rs[i].Status, rs[i].Error)
				}
				out[i] = rs[i].Output
			}
			return m, nil
		},
	}, nil
}

// keepBest adds one round of the Python baselines' or the peers' runs,
// keeping each system's best.
func (b *bench) keepBest(rows []pyThroughput) {
	for _, t := range rows {
		d := seconds(t.Seconds)
		i := slices.IndexFunc(b.pyThroughput, func(r Throughput) bool { return r.System == t.System })
		if i < 0 {
			b.pyThroughput = append(b.pyThroughput, Throughput{System: t.System, Tasks: t.Tasks, Correct: true, Note: t.Note})
			i = len(b.pyThroughput) - 1
		}
		r := &b.pyThroughput[i]
		r.Correct = r.Correct && t.Correct
		if len(r.Runs) == 0 || d < slices.Min(r.Runs) {
			r.Elapsed, r.Note = d, t.Note
		}
		r.Runs = append(r.Runs, d)
	}
}

// wasmHosts makes one in-process host of guest per worker, each warmed up
// with a batch.
func (b *bench) wasmHosts(ctx context.Context, guest string, inputs [][]byte) ([]*wasmHost, func(), error) {
	wasm, err := os.ReadFile(b.modules[guest])
	if err != nil {
		return nil, nil, err
	}
	cache := inProcessCache(b.opts.CacheDir)
	var hosts []*wasmHost
	closeAll := func() {
		for _, h := range hosts {
			h.close()
		}
		cache.Close(ctx)
	}
	for range b.opts.Workers {
		h, err := newWasmHost(ctx, wasm, cache)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		hosts = append(hosts, h)
		// Warm up: the first calls fault in the module's memory.
		k := min(len(inputs), batchSize)
		if err := h.runBatch("square", inputs[:k], make([][]byte, k)); err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("%s %s: %w", SysInProcess, guest, err)
		}
	}
	return hosts, closeAll, nil
}

// startProfile starts a CPU profile of this process into the CPUProfile
// directory, if one was asked for, and returns the function that stops it.
func (b *bench) startProfile(name string) (func(), error) {
	if b.opts.CPUProfile == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(b.opts.CPUProfile, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(b.opts.CPUProfile, name))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

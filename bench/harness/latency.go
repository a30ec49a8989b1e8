package harness

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/safepool/safepool/pool"
)

// latSystem is one system of the latency scenario: a round trip to time.
type latSystem struct {
	row     Latency
	fn      func() error
	samples []time.Duration
}

// latency is scenario 2: the round trip of one task, LatencySamples times
// per system after LatencySamples/10 untimed ones. The systems take turns
// in LatencyRounds rounds, so that a burst of load from elsewhere on the
// machine hits them alike.
func (b *bench) latency(ctx context.Context) error {
	in := []byte("7")
	check := func(out []byte) error {
		if string(out) != "49" {
			return fmt.Errorf("square(7) gave %q", out)
		}
		return nil
	}

	// Native: a request to one of Workers goroutines and its answer back,
	// the smallest thing that has the shape of Apply.
	type request struct {
		in  []byte
		out chan []byte
	}
	reqs := make(chan request)
	defer close(reqs)
	for range b.opts.Workers {
		go func() {
			for r := range reqs {
				r.out <- nativeSquare(nil, r.in)
			}
		}()
	}
	reply := make(chan []byte, 1)
	systems := []*latSystem{{
		row: Latency{System: SysNative, Note: "channel round trip to a worker goroutine"},
		fn: func() error {
			reqs <- request{in, reply}
			return check(<-reply)
		},
	}}

	// The kernel's floor for any process pool: 8 bytes to another process
	// over a pipe and back, through cat, which sleeps in read between
	// messages. It is missing when there is no cat.
	if pipe, err := newPipeEcho(); err == nil {
		defer pipe.close()
		systems = append(systems, &latSystem{
			row: Latency{System: SysPipe, Note: "8 bytes to a cat process and back over pipes; cat sleeps in read(2) between messages: the floor of a wake-up in each direction"},
			fn:  pipe.roundTrip,
		})
	}

	for _, g := range b.opts.Guests {
		wasm, err := os.ReadFile(b.modules[g])
		if err != nil {
			return err
		}
		cache := inProcessCache(b.opts.CacheDir)
		defer cache.Close(ctx)
		h, err := newWasmHost(ctx, wasm, cache)
		if err != nil {
			return err
		}
		defer h.close()
		systems = append(systems, &latSystem{
			row: Latency{System: SysInProcess, Guest: g, Note: "safepool_alloc, copy in, safepool_call, copy out, on the calling goroutine"},
			fn: func() error {
				out, err := h.callOne("square", in)
				if err != nil {
					return err
				}
				return check(out)
			},
		})

		p, err := b.newPool(g, nil)
		if err != nil {
			return err
		}
		defer closePool(p)
		systems = append(systems, &latSystem{
			row: Latency{System: SysSafepool, Guest: g, Note: fmt.Sprintf("Apply on %d workers", b.opts.Workers)},
			fn:  applySquare(ctx, p, in, check),
		})

		fresh, err := b.newPool(g, func(c *pool.Config) { c.FreshInstance = true })
		if err != nil {
			return err
		}
		defer closePool(fresh)
		systems = append(systems, &latSystem{
			row: Latency{System: SysSafepoolFresh, Guest: g, Note: fmt.Sprintf("Apply on %d workers with FreshInstance: each task starts from the instance's state after start-up (reset copy-on-write under wazero)", b.opts.Workers)},
			fn:  applySquare(ctx, fresh, in, check),
		})
	}

	n := b.opts.LatencySamples
	for _, s := range systems {
		for range max(n/10, 10) {
			if err := s.fn(); err != nil {
				return fmt.Errorf("%s %s: %w", s.row.System, s.row.Guest, err)
			}
		}
	}
	py := map[string]*latSystem{}
	var pyOrder []string
	for round := range b.opts.LatencyRounds {
		// Spread n samples over the rounds, the first rounds taking the
		// remainder.
		k := n / b.opts.LatencyRounds
		if round < n%b.opts.LatencyRounds {
			k++
		}
		b.waitQuiet()
		for _, s := range systems {
			for range k {
				start := time.Now()
				err := s.fn()
				s.samples = append(s.samples, time.Since(start))
				if err != nil {
					return fmt.Errorf("%s %s: %w", s.row.System, s.row.Guest, err)
				}
			}
		}
		var rows []pyLatency
		if b.py.enabled() {
			b.waitQuiet()
			if out := b.python(ScenarioLatency, "--latency-samples", strconv.Itoa(k)); out != nil {
				for _, l := range out.Latency {
					rows = append(rows, pyLatency{l.System, l.Raw})
				}
			}
		}
		if b.peer.enabled() {
			b.waitQuiet()
			if out := b.peers(ScenarioLatency, "--latency-samples", strconv.Itoa(k)); out != nil {
				for _, l := range out.Latency {
					rows = append(rows, pyLatency{l.System, l.Raw})
				}
			}
		}
		for _, l := range rows {
			s := py[l.System]
			if s == nil {
				s = &latSystem{row: Latency{System: l.System}}
				py[l.System] = s
				pyOrder = append(pyOrder, l.System)
			}
			for _, v := range l.Raw {
				s.samples = append(s.samples, seconds(v))
			}
		}
	}
	for _, name := range pyOrder {
		systems = append(systems, py[name])
	}
	for _, s := range systems {
		b.res.Latency = append(b.res.Latency, s.summary())
	}
	return nil
}

// applySquare is one Apply of square on p, its output checked.
func applySquare(ctx context.Context, p *pool.Pool, in []byte, check func([]byte) error) func() error {
	return func() error {
		r, err := p.Apply(ctx, "square", in)
		if err != nil {
			return err
		}
		if r.Status != pool.StatusOK {
			return fmt.Errorf("apply: %s: %s", r.Status, r.Error)
		}
		return check(r.Output)
	}
}

// pyLatency is one Python system's samples of one round, in seconds.
type pyLatency struct {
	System string
	Raw    []float64
}

// summary turns the samples into the row's figures.
func (s *latSystem) summary() Latency {
	l := s.row
	lat := slices.Clone(s.samples)
	slices.Sort(lat)
	var total time.Duration
	for _, d := range lat {
		total += d
	}
	l.Samples = len(lat)
	if l.Samples > 0 {
		l.P50, l.P99, l.Max = percentile(lat, 50), percentile(lat, 99), lat[len(lat)-1]
		l.Mean = total / time.Duration(len(lat))
	}
	return l
}

package harness

import (
	"context"
	"fmt"
	"iter"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/safepool/safepool/pool"
)

// memory is scenario 6: the resident memory of idle workers, and of the
// host while Imap streams StreamN items through a small window.
func (b *bench) memory(ctx context.Context) error {
	for _, g := range b.opts.Guests {
		row, err := b.idleRSS(ctx, g)
		if err != nil {
			return err
		}
		b.res.IdleRSS = append(b.res.IdleRSS, row)
	}
	if py := b.python(ScenarioMemory); py != nil && py.Memory != nil {
		b.res.IdleRSS = append(b.res.IdleRSS, IdleRSS{System: py.Memory.System, KiB: py.Memory.KiB})
	}
	s, err := b.stream(ctx, WATGuest)
	if s != nil {
		b.res.Stream = s
	}
	return err
}

// idleRSS reads VmRSS of each worker, found from EventWorkerStart, after a
// small map and a pause.
func (b *bench) idleRSS(ctx context.Context, guest string) (IdleRSS, error) {
	probe := newKillProbe() // used only for its set of live workers
	p, err := b.newPool(guest, func(c *pool.Config) { c.OnEvent = probe.onEvent })
	if err != nil {
		return IdleRSS{}, err
	}
	defer closePool(p)
	if _, err := p.Map(ctx, "square", decimals(1000)); err != nil {
		return IdleRSS{}, err
	}
	time.Sleep(300 * time.Millisecond)
	probe.mu.Lock()
	pids := make([]int, 0, len(probe.live))
	for pid := range probe.live {
		pids = append(pids, pid)
	}
	probe.mu.Unlock()
	slices.Sort(pids)
	row := IdleRSS{System: SysSafepool, Guest: guest}
	for _, pid := range pids {
		kib, err := rssKiB(strconv.Itoa(pid))
		if err != nil {
			return row, fmt.Errorf("worker %d: %w", pid, err)
		}
		row.KiB = append(row.KiB, kib)
	}
	if len(row.KiB) != b.opts.Workers {
		return row, fmt.Errorf("%s: found %d workers, want %d", guest, len(row.KiB), b.opts.Workers)
	}
	return row, nil
}

// rssSampler reads this process's VmRSS every few milliseconds.
type rssSampler struct {
	mu      sync.Mutex
	peak    int64
	samples int
	stop    chan struct{}
	done    chan struct{}
}

func sampleRSS(every time.Duration) *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	s.take()
	tick(every, s.take, s.stop, s.done)
	return s
}

// tick calls take every d in a goroutine until stop is closed, then closes
// done.
func tick(d time.Duration, take func(), stop, done chan struct{}) {
	go func() {
		defer close(done)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				take()
			}
		}
	}()
}

func (s *rssSampler) take() {
	kib, err := rssKiB("self")
	if err != nil {
		return
	}
	s.mu.Lock()
	s.peak = max(s.peak, kib)
	s.samples++
	s.mu.Unlock()
}

func (s *rssSampler) finish() (peak int64, samples int) {
	close(s.stop)
	<-s.done
	s.take()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak, s.samples
}

// stream runs Imap over StreamN fresh inputs, checking every result, while
// sampling the host's RSS.
func (b *bench) stream(ctx context.Context, guest string) (*Stream, error) {
	n := b.opts.StreamN
	p, err := b.newPool(guest, nil)
	if err != nil {
		return nil, err
	}
	defer closePool(p)
	if _, err := p.Apply(ctx, "square", []byte("7")); err != nil {
		return nil, err
	}
	debug.FreeOSMemory() // a start figure without garbage from earlier scenarios
	s := &Stream{Guest: guest, Items: n, Window: b.opts.StreamWindow}
	if s.StartKiB, err = rssKiB("self"); err != nil {
		return nil, err
	}
	inputs := iter.Seq[[]byte](func(yield func([]byte) bool) {
		for i := range n {
			if !yield(strconv.AppendInt(make([]byte, 0, 8), int64(i), 10)) {
				return
			}
		}
	})
	sampler := sampleRSS(10 * time.Millisecond)
	start := time.Now()
	i := 0
	var bad error
	var want []byte
	for r, err := range p.Imap(ctx, "square", inputs, b.opts.StreamWindow) {
		if err != nil {
			bad = err
			break
		}
		want = strconv.AppendInt(want[:0], int64(i)*int64(i), 10)
		if bad == nil && (r.Index != i || r.Status != pool.StatusOK || string(r.Output) != string(want)) {
			bad = fmt.Errorf("item %d: index %d, %s %q, want %s", i, r.Index, r.Status, r.Output, want)
		}
		i++
	}
	s.Elapsed = time.Since(start)
	s.PeakKiB, s.Samples = sampler.finish()
	s.EndKiB, _ = rssKiB("self")
	if bad == nil && i != n {
		bad = fmt.Errorf("the stream yielded %d items, want %d", i, n)
	}
	if bad != nil {
		return s, fmt.Errorf("%s Imap: %w", guest, bad)
	}
	s.Correct = true
	return s, nil
}

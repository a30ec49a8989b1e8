package harness

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/safepool/safepool/pool"
)

// startup is scenario 4: pool.New with Workers workers until the first
// Apply result, with a warm compilation cache and with a fresh, empty one,
// counting the compilations each start-up made.
func (b *bench) startup(ctx context.Context) error {
	for _, g := range b.opts.Guests {
		// Make sure the warm cache holds the module.
		p, err := b.newPool(g, nil)
		if err != nil {
			return err
		}
		closePool(p)

		row, err := b.startups(ctx, g, "warm", b.opts.WarmStarts, func() (string, func(), error) {
			return b.opts.CacheDir, func() {}, nil
		})
		if err != nil {
			return err
		}
		b.res.Startup = append(b.res.Startup, row)

		if !slices.Contains(b.opts.ColdGuests, g) || b.opts.ColdStarts < 1 {
			continue
		}
		row, err = b.startups(ctx, g, "cold", b.opts.ColdStarts, func() (string, func(), error) {
			dir, err := os.MkdirTemp("", "safepool-bench-cold-")
			return dir, func() { os.RemoveAll(dir) }, err
		})
		if err != nil {
			return err
		}
		b.res.Startup = append(b.res.Startup, row)
	}
	var rows []pyStartup
	if py := b.python(ScenarioStartup); py != nil {
		rows = append(rows, py.Startup...)
	}
	if out := b.peers(ScenarioStartup); out != nil {
		rows = append(rows, out.Startup...)
	}
	{
		for _, s := range rows {
			row := Startup{System: s.System, Cache: "n/a", Workers: b.opts.Workers}
			for _, t := range s.Times {
				row.Times = append(row.Times, seconds(t))
				row.Compiles = append(row.Compiles, -1)
			}
			b.res.Startup = append(b.res.Startup, row)
		}
	}
	return nil
}

// startups times n start-ups, each with the cache directory cache returns.
func (b *bench) startups(ctx context.Context, guest, kind string, n int, cache func() (string, func(), error)) (Startup, error) {
	row := Startup{System: SysSafepool, Guest: guest, Cache: kind, Workers: b.opts.Workers}
	for range n {
		dir, cleanup, err := cache()
		if err != nil {
			return row, err
		}
		b.waitQuiet()
		d, newDur, compiles, files, err := b.startOnce(ctx, guest, dir)
		if err == nil {
			row.Times = append(row.Times, d)
			row.NewTimes = append(row.NewTimes, newDur)
			row.Compiles = append(row.Compiles, compiles)
			if kind == "cold" {
				row.CacheFiles = files
			}
		}
		cleanup()
		if err != nil {
			return row, fmt.Errorf("%s start-up, %s cache: %w", guest, kind, err)
		}
	}
	return row, nil
}

// startOnce times one pool start-up until the first result and until New
// returned, and counts the compilations written to dir meanwhile and the
// files dir holds after.
func (b *bench) startOnce(ctx context.Context, guest, dir string) (total, newDur time.Duration, compiles, files int, err error) {
	w, err := watchCompiles(dir)
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("watch the cache: %w", err)
	}
	start := time.Now()
	p, err := pool.New(context.Background(), pool.Config{Module: b.modules[guest], Workers: b.opts.Workers, CacheDir: dir})
	newDur = time.Since(start)
	if err != nil {
		w.stop()
		return 0, 0, 0, 0, err
	}
	r, err := p.Apply(ctx, "square", []byte("7"))
	total = time.Since(start)
	closePool(p)
	w.stop()
	if err != nil {
		return 0, 0, 0, 0, err
	}
	if r.Status != pool.StatusOK || string(r.Output) != "49" {
		return 0, 0, 0, 0, fmt.Errorf("first task: %s %q %s", r.Status, r.Output, r.Error)
	}
	return total, newDur, w.compiles(), countFiles(dir), nil
}

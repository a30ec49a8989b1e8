package harness

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/safepool/safepool/pool"
)

// chaos is scenario 5: the same map calm and with a worker SIGKILLed every
// ChaosEvery, under the Retry policy, every result checked.
func (b *bench) chaos(ctx context.Context) error {
	for _, g := range b.opts.Guests {
		row, err := b.chaosRun(ctx, g)
		if err != nil {
			return err
		}
		b.res.Chaos = append(b.res.Chaos, row)
	}
	return nil
}

// chaosMinKills is how many kill intervals the calm map must last at
// least, so that the chaotic one sees that many kills or more. A map that
// is faster is made longer.
const chaosMinKills = 10

func (b *bench) chaosRun(ctx context.Context, guest string) (Chaos, error) {
	// OnEvent stays unset: it would make workers report every task's start
	// and change what is measured. The workers are found as this process's
	// children instead.
	p, err := b.newPool(guest, func(c *pool.Config) {
		c.KillPolicy = pool.Retry
		c.Retry.MaxAttempts = 10 // a task blamed for three kills in a row is chance, not a bug
		// A kill every 100 ms hits most Go-guest workers (about 0.1 s to
		// start, more on a busy machine) before their handshake: that is
		// the storm the start-up breaker ends after StartGiveUp. This
		// scenario measures throughput under it instead, so a full run
		// waits longer (ChaosGiveUp); a quick one, on a machine too busy
		// for any worker to start between two kills, ends sooner with the
		// pool's StartError as its outcome.
		c.StartGiveUp = b.opts.ChaosGiveUp
	})
	if err != nil {
		return Chaos{}, err
	}
	defer closePool(p)
	n := b.opts.ChaosN
	if _, err := p.Map(ctx, "square", decimals(min(n, 10_000))); err != nil {
		return Chaos{}, err
	}
	var (
		row    Chaos
		inputs [][]byte
		rs     []pool.Result
	)
	for {
		inputs = decimals(n)
		row = Chaos{Guest: guest, Tasks: n}
		b.waitQuiet()
		start := time.Now()
		rs, err = p.Map(ctx, "square", inputs)
		row.Calm = time.Since(start)
		if err == nil {
			err = checkResults(rs, n)
		}
		if err != nil {
			return row, fmt.Errorf("%s calm map: %w", guest, err)
		}
		want := chaosMinKills * b.opts.ChaosEvery
		if row.Calm >= want || n >= 64*b.opts.ChaosN {
			break
		}
		n = int(float64(n) * min(1.5*want.Seconds()/max(row.Calm.Seconds(), 1e-3), 8))
	}

	b.waitQuiet()
	stop, kills := make(chan struct{}), make(chan int)
	go func() {
		t := time.NewTicker(b.opts.ChaosEvery)
		defer t.Stop()
		k := 0
		for {
			select {
			case <-stop:
				kills <- k
				return
			case <-t.C:
				if pid, ok := oldestChild(); ok && syscall.Kill(pid, syscall.SIGKILL) == nil {
					k++
				}
			}
		}
	}()
	start := time.Now()
	m, err := p.MapAsync(ctx, "square", inputs)
	if err == nil {
		rs, err = m.Wait(ctx)
	}
	row.Chaos = time.Since(start)
	close(stop)
	row.Kills = <-kills
	if err != nil {
		// The pool gave up: that is the scenario's outcome, not a failure
		// of the harness.
		row.Detail = fmt.Sprintf("the map failed after %d kills: %v", row.Kills, err)
		return row, nil
	}
	row.Retried = m.Progress().Retried
	if err := checkResults(rs, n); err != nil {
		row.Detail = fmt.Sprintf("wrong results: %v", err)
		return row, nil
	}
	row.Correct = true
	row.Detail = fmt.Sprintf("%d of %d results ok and correct; %d killed tasks retried", n, n, row.Retried)
	return row, nil
}

package harness

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/safepool/safepool/pool"
)

// hangTasks is the size of the map whose worker is killed, and hangVictim
// the task whose worker is killed when it starts.
const (
	hangTasks  = 10
	hangVictim = 3
)

// hang is scenario 7: the map that hangs multiprocessing.Pool and breaks
// ProcessPoolExecutor, run by safepool under its default policy (Skip) and
// under Retry.
func (b *bench) hang(ctx context.Context) error {
	for _, policy := range []pool.Policy{pool.Skip, pool.Retry} {
		row, err := b.hangRun(ctx, policy)
		if err != nil {
			return err
		}
		b.res.Hang = append(b.res.Hang, row)
	}
	if py := b.python(ScenarioHang); py != nil {
		for _, h := range py.Hang {
			b.res.Hang = append(b.res.Hang, Hang{System: h.System, Outcome: h.Outcome, Elapsed: seconds(h.Seconds), Detail: h.Detail})
		}
	}
	return nil
}

func (b *bench) hangRun(ctx context.Context, policy pool.Policy) (Hang, error) {
	var once sync.Once
	p, err := b.newPool(GoGuest, func(c *pool.Config) {
		c.KillPolicy = policy
		c.OnEvent = func(e pool.Event) {
			if e.Kind == pool.EventTaskStart && e.Index == hangVictim {
				once.Do(func() { _ = syscall.Kill(e.WorkerPID, syscall.SIGKILL) })
			}
		}
	})
	if err != nil {
		return Hang{}, err
	}
	defer closePool(p)
	inputs := decimals(hangTasks)
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	start := time.Now()
	m, err := p.MapAsync(cctx, "slow_square", inputs)
	if err != nil {
		return Hang{}, err
	}
	rs, err := m.Wait(ctx)
	row := Hang{System: fmt.Sprintf("safepool Map, %s policy", policy), Elapsed: time.Since(start)}
	if err != nil {
		return row, fmt.Errorf("%s: %w", row.System, err)
	}
	// The kill is sent when task hangVictim starts, and lands on the task
	// its worker runs by then: that one, or, on a busy machine that reads
	// the start event late, a later one of the same worker. Only that task
	// may be blamed.
	ok, killed, victim := 0, 0, -1
	for i, r := range rs {
		switch {
		case r.Status == pool.StatusOK && string(r.Output) == strconv.Itoa(i*i):
			ok++
		case r.Status == pool.StatusKilled && i >= hangVictim && killed == 0:
			killed, victim = 1, i
		default:
			return row, fmt.Errorf("%s: task %d ended %s %q (%s)", row.System, i, r.Status, r.Output, r.Error)
		}
	}
	row.Outcome = "completed"
	switch policy {
	case pool.Skip:
		kt := m.KilledTasks()
		if killed != 1 || len(kt) != 1 || kt[0].Index != victim || kt[0].Signal != "SIGKILL" {
			return row, fmt.Errorf("%s: want one task killed by SIGKILL and listed in KilledTasks, got %d killed, %+v", row.System, killed, kt)
		}
		row.Detail = fmt.Sprintf("%d ok in input order; task %d is killed (%s) and listed by KilledTasks with its input %q",
			ok, victim, kt[0].Signal, kt[0].Input)
	default:
		again := -1
		for i := hangVictim; i < len(rs); i++ {
			if rs[i].Attempts == 2 {
				again = i
				break
			}
		}
		if ok != hangTasks || again < 0 {
			return row, fmt.Errorf("%s: %d ok, and no task from %d on ran twice; want all ok, the killed task twice", row.System, ok, hangVictim)
		}
		row.Detail = fmt.Sprintf("all %d ok in input order; task %d ran again on a live worker (2 attempts); the pool started a replacement worker", ok, again)
	}
	return row, nil
}

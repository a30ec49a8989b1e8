package harness

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/safepool/safepool/pool"
)

// killTasks is the size of the map whose worker is killed, and killVictim
// the task whose worker is killed when it starts.
const (
	killTasks  = 10
	killVictim = 3
)

// The outcomes of a map whose worker was killed.
const (
	OutcomeCompleted = "completed" // every other task has its result
	OutcomeHung      = "hung"      // no answer within the bound
	OutcomeFailed    = "failed"    // the call raised, or other tasks lost their results
)

// kills is scenario 7, the kill matrix: a map of slow squares whose worker
// is SIGKILLed while it runs one task, on safepool under each policy and on
// every Python pool.
func (b *bench) kills(ctx context.Context) error {
	for _, policy := range []pool.Policy{pool.Skip, pool.Retry, pool.Abort} {
		row, err := b.killRun(ctx, policy)
		if err != nil {
			return err
		}
		b.res.Kills = append(b.res.Kills, row)
	}
	if out := b.peers(ScenarioKills); out != nil {
		for _, k := range out.Kills {
			b.res.Kills = append(b.res.Kills, k.row())
		}
	}
	return nil
}

func (k pyKill) row() KillRow {
	return KillRow{System: k.System, Mode: k.Mode, Kill: k.Kill, Outcome: k.Outcome, Tasks: k.Tasks, OK: k.OK, InOrder: k.InOrder,
		Lost: k.Lost, Retried: k.Retried, Named: k.Named, Error: k.Error, After: k.After, Elapsed: seconds(k.Seconds), Detail: k.Detail}
}

// killRun runs the map on safepool under policy, SIGKILLing the worker that
// starts task killVictim.
func (b *bench) killRun(ctx context.Context, policy pool.Policy) (KillRow, error) {
	var once sync.Once
	p, err := b.newPool(GoGuest, func(c *pool.Config) {
		c.KillPolicy = policy
		c.OnEvent = func(e pool.Event) {
			if e.Kind == pool.EventTaskStart && e.Index == killVictim {
				once.Do(func() { _ = syscall.Kill(e.WorkerPID, syscall.SIGKILL) })
			}
		}
	})
	if err != nil {
		return KillRow{}, err
	}
	defer closePool(p)
	row := KillRow{System: SysSafepool, Policy: policy.String(), Kill: "SIGKILL", Tasks: killTasks}
	cctx, cancel := context.WithTimeout(ctx, safepoolBound)
	defer cancel()
	start := time.Now()
	m, err := p.MapAsync(cctx, "slow_square", decimals(killTasks))
	if err != nil {
		return row, err
	}
	rs, err := m.Wait(cctx)
	row.Elapsed = time.Since(start)
	if errors.Is(err, context.DeadlineExceeded) {
		row.Outcome, row.Detail = OutcomeHung, fmt.Sprintf("no result %s after the map started", fmtDur(safepoolBound))
		return row, fmt.Errorf("safepool, %s policy: hung", policy)
	}
	row.After = usableAfter(ctx, p)
	sq := func(i int) bool { return rs[i].Status == pool.StatusOK && string(rs[i].Output) == strconv.Itoa(i*i) }
	var te *pool.TaskError
	if policy == pool.Abort {
		if !errors.As(err, &te) || te.Index < killVictim || te.Status != pool.StatusKilled {
			return row, fmt.Errorf("safepool, abort policy: want a *pool.TaskError for a killed task from %d on, got %v", killVictim, err)
		}
		row.Outcome, row.Named, row.Lost, row.Error = OutcomeFailed, true, []int{te.Index}, "*pool.TaskError"
		for i := range rs {
			if sq(i) {
				row.OK++
			}
		}
		row.Detail = fmt.Sprintf("the map failed by policy with a *pool.TaskError naming task %d (%s); %d results had come in, the other slots are not_run",
			te.Index, te.Status, row.OK)
		return row, nil
	}
	if err != nil {
		return row, fmt.Errorf("safepool, %s policy: %w", policy, err)
	}
	// The kill is sent when task killVictim starts, and lands on the task
	// its worker runs by then: that one, or, on a busy machine that reads
	// the start event late, a later one of the same worker.
	victim := -1
	for i := range rs {
		switch {
		case sq(i) && rs[i].Attempts == 1:
			row.OK++
		case sq(i) && policy == pool.Retry && rs[i].Attempts == 2 && i >= killVictim && victim < 0:
			row.OK++
			victim, row.Retried, row.Named = i, true, true
		case rs[i].Status == pool.StatusKilled && policy == pool.Skip && i >= killVictim && victim < 0:
			victim = i
			row.Lost, row.Error = []int{i}, rs[i].Status.String()
		default:
			return row, fmt.Errorf("safepool, %s policy: task %d ended %s %q after %d attempt(s) (%s)", policy, i, rs[i].Status, rs[i].Output, rs[i].Attempts, rs[i].Error)
		}
	}
	if victim < 0 {
		return row, fmt.Errorf("safepool, %s policy: no task from %d on was killed", policy, killVictim)
	}
	row.Outcome, row.InOrder = OutcomeCompleted, true
	if policy == pool.Skip {
		kt := m.KilledTasks()
		if len(kt) != 1 || kt[0].Index != victim || kt[0].Signal != "SIGKILL" {
			return row, fmt.Errorf("safepool, skip policy: want task %d listed by KilledTasks, killed by SIGKILL; got %+v", victim, kt)
		}
		row.Named = true
		row.Detail = fmt.Sprintf("%d of %d results in input order; task %d has status killed and is listed by KilledTasks with its input %q and signal %s",
			row.OK, killTasks, victim, kt[0].Input, kt[0].Signal)
	} else {
		row.Detail = fmt.Sprintf("all %d results in input order; task %d ran again on a live worker (2 attempts)", row.OK, victim)
	}
	return row, nil
}

// safepoolBound is how long safepool's maps in the kill and memory
// scenarios are given before they are called hung: long enough for a
// worker of the Go guest to start under the race detector, which takes
// seconds.
const safepoolBound = time.Minute

// usableAfter runs one more task on p.
func usableAfter(ctx context.Context, p *pool.Pool) string {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r, err := p.Apply(cctx, "square", []byte("7"))
	switch {
	case err != nil:
		return "unusable (" + err.Error() + ")"
	case r.Status != pool.StatusOK || string(r.Output) != "49":
		return fmt.Sprintf("unusable (square(7): %s %q)", r.Status, r.Output)
	}
	return "usable"
}

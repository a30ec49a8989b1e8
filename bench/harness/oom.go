package harness

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/safepool/safepool/pool"
)

// oom is scenario 9: the map of the kill matrix, with task killVictim
// allocating three times a memory budget and the others a few MiB. safepool
// runs it with the budget as its memory cap (Config.MemoryLimit), under Skip
// and under Retry (which grows the cap, Retry.MemoryGrowth); the Python
// pools with RLIMIT_AS set in the worker, and with a watchdog that
// SIGKILLs a worker whose resident set grows past the budget, as the OOM
// killer would.
func (b *bench) oom(ctx context.Context) error {
	for _, policy := range []pool.Policy{pool.Skip, pool.Retry} {
		row, err := b.oomRun(ctx, policy)
		if err != nil {
			return err
		}
		b.res.OOM = append(b.res.OOM, row)
	}
	if out := b.peers(ScenarioOOM); out != nil {
		for _, k := range out.OOM {
			b.res.OOM = append(b.res.OOM, k.row())
		}
	}
	return nil
}

// oomInputs are the MiB each task of the memory scenario allocates, which is
// also what it returns.
func oomInputs(budgetMiB int) []int {
	in := make([]int, killTasks)
	for i := range in {
		in[i] = i
	}
	in[killVictim] = 3 * budgetMiB
	return in
}

func (b *bench) oomRun(ctx context.Context, policy pool.Policy) (KillRow, error) {
	budget := b.opts.MemoryBudgetMiB
	p, err := b.newPool(GoGuest, func(c *pool.Config) {
		c.MemoryLimit = int64(budget) << 20
		c.KillPolicy = policy
	})
	if err != nil {
		return KillRow{}, err
	}
	defer closePool(p)
	mib := oomInputs(budget)
	inputs := make([][]byte, len(mib))
	for i, m := range mib {
		inputs[i] = []byte(strconv.Itoa(m))
	}
	row := KillRow{System: SysSafepool, Policy: policy.String(), Mode: "memory cap", Tasks: killTasks,
		Kill: fmt.Sprintf("MemoryLimit %d MiB", budget)}
	cctx, cancel := context.WithTimeout(ctx, safepoolBound)
	defer cancel()
	start := time.Now()
	m, err := p.MapAsync(cctx, "memhog", inputs)
	if err != nil {
		return row, err
	}
	rs, err := m.Wait(cctx)
	row.Elapsed = time.Since(start)
	if err != nil {
		return row, fmt.Errorf("safepool memory cap, %s policy: %w", policy, err)
	}
	row.After = usableAfter(ctx, p)
	v := rs[killVictim]
	for i, r := range rs {
		if i != killVictim && (r.Status != pool.StatusOK || string(r.Output) != string(inputs[i])) {
			return row, fmt.Errorf("safepool memory cap, %s policy: task %d ended %s %q (%s)", policy, i, r.Status, r.Output, r.Error)
		}
		if r.Status == pool.StatusOK {
			row.OK++
		}
	}
	row.Outcome, row.InOrder, row.Named = OutcomeCompleted, true, true
	switch policy {
	case pool.Skip:
		if v.Status != pool.StatusMemoryLimit {
			return row, fmt.Errorf("safepool memory cap, skip policy: task %d ended %s, want memory_limit", killVictim, v.Status)
		}
		row.Lost, row.Error = []int{killVictim}, v.Status.String()
		row.Detail = fmt.Sprintf("%d of %d results in input order; task %d (%d MiB) has status memory_limit and is listed by KilledTasks; its worker lives on",
			row.OK, killTasks, killVictim, mib[killVictim])
	default:
		if v.Status != pool.StatusOK || string(v.Output) != string(inputs[killVictim]) || v.Attempts < 2 {
			return row, fmt.Errorf("safepool memory cap, retry policy: task %d ended %s after %d attempt(s), want ok after a retry with a larger cap (%s)",
				killVictim, v.Status, v.Attempts, v.Error)
		}
		row.Retried = true
		row.Detail = fmt.Sprintf("all %d results in input order; task %d (%d MiB) hit its cap and succeeded on attempt %d under a cap of %d MiB (Retry.MemoryGrowth ×2)",
			row.OK, killVictim, mib[killVictim], v.Attempts, v.Stats.MemoryLimit>>20)
	}
	return row, nil
}

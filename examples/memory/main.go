// Command memory shows the memory cap: a task that needs more memory than
// its cap ends with status memory_limit under the default policy, and
// succeeds under Retry, which grows the cap on each attempt.
//
//	go run ./examples/memory
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"text/tabwriter"

	"github.com/safepool/safepool/internal/guestbuild"
	"github.com/safepool/safepool/pool"
)

const mib = 1 << 20

// needs is how much memory each task allocates, in MiB.
var needs = []int{1, 4, 40}

func main() {
	module := flag.String("module", "", "the compiled guest module (default: build ./examples/memory/guest on first run)")
	flag.Parse()
	if *module == "" {
		var err error
		if *module, err = guestbuild.Build("examples/memory/guest"); err != nil {
			fmt.Fprintln(os.Stderr, "memory:", err)
			os.Exit(1)
		}
	}
	if err := run(*module); err != nil {
		fmt.Fprintln(os.Stderr, "memory:", err)
		os.Exit(1)
	}
}

func run(module string) error {
	fmt.Println("== skip (the default): each task gets a 16 MiB cap")
	skip := pool.Config{Module: module, Workers: 2, MemoryLimit: 16 * mib}
	if err := runMap(skip); err != nil {
		return err
	}

	fmt.Println()
	fmt.Println("== retry: OnMemoryLimit: pool.Retry, Retry.MemoryGrowth: 2, Retry.MaxMemory: 128 MiB")
	retry := skip
	retry.OnMemoryLimit = pool.Retry
	retry.Retry = pool.RetryPolicy{MaxAttempts: 4, MemoryGrowth: 2, MaxMemory: 128 * mib}
	return runMap(retry)
}

// runMap runs grow over needs and prints each attempt of each task: its
// status and the cap it ran under.
func runMap(cfg pool.Config) error {
	var mu sync.Mutex
	attempts := map[int][]pool.Event{}
	cfg.OnEvent = func(e pool.Event) {
		if e.Kind == pool.EventTaskEnd {
			mu.Lock()
			attempts[e.Index] = append(attempts[e.Index], e)
			mu.Unlock()
		}
	}
	p, err := pool.New(context.Background(), cfg)
	if err != nil {
		return err
	}
	defer p.Close()
	rs, err := pool.MapJSON[int, int](context.Background(), p, "grow", needs)
	if err != nil {
		return err
	}

	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "task\tneeds\tattempt\tcap\tstatus\tpeak")
	mu.Lock()
	defer mu.Unlock()
	for i, r := range rs {
		for _, e := range attempts[i] {
			// The event does not carry the cap; it follows from the config:
			// MemoryLimit, times MemoryGrowth for each retry, up to
			// MaxMemory.
			limit := capFor(cfg, e.Attempt)
			peak := "-"
			if e.Attempt == r.Attempts {
				limit = r.Stats.MemoryLimit // the last attempt's cap, as the pool reports it
				if r.Status == pool.StatusOK {
					peak = fmt.Sprintf("%d MiB", (r.Stats.PeakMemory+mib-1)/mib)
				}
			}
			fmt.Fprintf(w, "%d\t%d MiB\t%d\t%d MiB\t%s\t%s\n", i, needs[i], e.Attempt, limit/mib, e.Status, peak)
		}
	}
	return w.Flush()
}

// capFor is the memory cap of a task's nth attempt after memory_limit hits.
func capFor(cfg pool.Config, attempt int) int64 {
	limit := cfg.MemoryLimit
	for range attempt - 1 {
		if cfg.Retry.MemoryGrowth > 1 {
			limit = min(int64(float64(limit)*cfg.Retry.MemoryGrowth), cfg.Retry.MaxMemory)
		}
	}
	return limit
}

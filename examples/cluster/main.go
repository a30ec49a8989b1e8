// Command cluster runs a map on a cluster instead of local workers, and
// SIGKILLs the worker that runs task 3 in the middle of it: square 0..9
// under retry, on an agent's workers, over NATS JetStream.
//
//	go run ./examples/cluster                              # Config.Cluster = "embedded": a server and an agent in this process
//	go run ./examples/cluster -nats nats://127.0.0.1:4222  # the agents of 'safepool serve' (or $SAFEPOOL_NATS)
//	go run ./examples/cluster -policy skip                 # task 3 keeps its killed status instead
//
// The program links the cluster's transport with a blank import of
// github.com/safepool/safepool/cluster; the rest is the same code as a
// local pool's. Under retry every square comes back, in input order, and
// the killed-task list is empty; the result of task 3 names the agent and
// the host its second attempt ran on. Under skip task 3's slot is empty
// and the killed-task list names the agent whose worker was killed.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	_ "github.com/safepool/safepool/cluster" // links the NATS transport: Config.Cluster works
	"github.com/safepool/safepool/internal/guestbuild"
	"github.com/safepool/safepool/pool"
)

func main() {
	natsURL := flag.String("nats", os.Getenv("SAFEPOOL_NATS"), "the NATS servers of running agents, such as nats://127.0.0.1:4222 (default $SAFEPOOL_NATS; empty: an embedded cluster)")
	policy := flag.String("policy", "retry", "the policy for killed tasks: skip, retry or abort")
	module := flag.String("module", "", "the compiled guest module (default: build ./examples/seed/guest on first run)")
	flag.Parse()

	kp, err := pool.ParsePolicy(*policy)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster: -policy must be skip, retry or abort")
		os.Exit(2)
	}
	if *module == "" {
		if *module, err = guestbuild.Build("examples/seed/guest"); err != nil {
			fmt.Fprintln(os.Stderr, "cluster:", err)
			os.Exit(1)
		}
	}
	target := "embedded"
	if *natsURL != "" {
		target = *natsURL
	}
	if err := run(*module, target, kp); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

// run maps square over 0..9 on the cluster at target, killing the worker
// that runs task 3 the first time it starts.
func run(module, target string, policy pool.Policy) error {
	fmt.Printf("== %s on %s\n", policy, where(target))
	host, _ := os.Hostname()
	var once sync.Once
	ctx := context.Background()
	p, err := pool.New(ctx, pool.Config{
		Module:     module,
		Workers:    2, // the embedded agent's workers; agents of 'safepool serve' have their own
		KillPolicy: policy,
		Retry:      pool.RetryPolicy{Backoff: 10 * time.Millisecond},
		Cluster:    target,
		// ClusterOptions: cluster.Options{Token: ...} for servers that ask for one.
		//
		// OnEvent sees each task start with the pid of the worker that
		// runs it, and the agent and host: the OOM killer, played by us,
		// on an agent of this machine.
		OnEvent: func(e pool.Event) {
			if e.Kind != pool.EventTaskStart || e.Index != 3 || e.Attempt != 1 {
				return
			}
			once.Do(func() {
				if e.Host != host {
					fmt.Printf("task 3 runs on host %s, not this one: no kill\n", e.Host)
					return
				}
				fmt.Printf("kill -9 %d (the worker running task 3, on agent %s)\n", e.WorkerPID, e.Agent)
				if err := syscall.Kill(e.WorkerPID, syscall.SIGKILL); err != nil {
					fmt.Fprintln(os.Stderr, "cluster: kill:", err)
				}
			})
		},
	})
	if err != nil {
		return err
	}
	defer p.Close()

	inputs := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	rs, err := pool.MapJSON[int, int](ctx, p, "square", inputs)
	if err != nil {
		return fmt.Errorf("map failed: %w", err)
	}
	// A killed task's slot is empty: nil.
	slots := make([]any, len(rs))
	for i, r := range rs {
		if r.Status == pool.StatusOK {
			slots[i] = r.Value
		}
	}
	fmt.Println(slots)
	r := rs[3]
	fmt.Printf("task 3: %s after %d attempt(s), last on agent %s\n", r.Status, r.Attempts, r.Stats.Agent)
	killed := p.KilledTasks()
	fmt.Printf("killed tasks: %d\n", len(killed))
	for _, kt := range killed {
		fmt.Printf("  task %d: %s(%s), status %s after %d attempt(s): %s\n",
			kt.Index, kt.Func, kt.Input, kt.Status, len(kt.Attempts), kt.Reason)
	}
	return nil
}

func where(target string) string {
	if target == "embedded" {
		return "an embedded cluster"
	}
	return target
}

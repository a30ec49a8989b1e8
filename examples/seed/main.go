// Command seed runs the seed document's example: square 0..9 on a pool of
// two workers, and SIGKILL the worker that runs task 3, under each policy.
//
//	go run ./examples/seed               # skip, retry and abort in turn
//	go run ./examples/seed -mode retry   # one policy
//	go run ./examples/seed -report DIR   # also write DIR/report.html, a timeline of the runs
//
// Under skip the map finishes with an empty slot for task 3, as the seed
// promised: [0 1 4 <nil> 16 25 36 49 64 81]. Under retry task 3 runs again
// and every square is there. Under abort the map fails with an error that
// names task 3.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/safepool/safepool/internal/guestbuild"
	"github.com/safepool/safepool/internal/report"
	"github.com/safepool/safepool/pool"
)

// stats collects the stats records of every map, for -report.
var stats []report.Record

func main() {
	mode := flag.String("mode", "all", "the policy for killed tasks: skip, retry, abort, or all to run the three in turn")
	module := flag.String("module", "", "the compiled guest module (default: build ./examples/seed/guest on first run)")
	reportDir := flag.String("report", "", "also write the runs' stats and an HTML report of them (report.html) into this directory")
	flag.Parse()

	modes := []string{"skip", "retry", "abort"}
	if *mode != "all" {
		if _, err := pool.ParsePolicy(*mode); err != nil {
			fmt.Fprintln(os.Stderr, "seed: -mode must be skip, retry, abort or all")
			os.Exit(2)
		}
		modes = []string{*mode}
	}
	if *module == "" {
		var err error
		if *module, err = guestbuild.Build("examples/seed/guest"); err != nil {
			fmt.Fprintln(os.Stderr, "seed:", err)
			os.Exit(1)
		}
	}
	for i, m := range modes {
		if i > 0 {
			fmt.Println()
		}
		if err := run(*module, m); err != nil {
			fmt.Fprintln(os.Stderr, "seed:", err)
			os.Exit(1)
		}
	}
	if *reportDir != "" {
		page, err := writeReport(*reportDir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "seed:", err)
			os.Exit(1)
		}
		fmt.Printf("\nreport: %s\n", page)
	}
}

// writeReport writes the maps' stats records to dir/stats.jsonl and their
// report to dir/report.html, and returns the report's path.
func writeReport(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "stats.jsonl")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	enc := json.NewEncoder(f)
	for _, r := range stats {
		if err := enc.Encode(r); err != nil {
			f.Close()
			return "", err
		}
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	page := filepath.Join(dir, "report.html")
	out, err := os.Create(page)
	if err != nil {
		return "", err
	}
	if err := report.Render(out, report.Options{Stats: path, Title: "safepool seed demo: a worker SIGKILLed under skip, retry and abort"}); err != nil {
		out.Close()
		return "", err
	}
	return filepath.Abs(page)
}

// run maps square over 0..9 under one policy, killing the worker that runs
// task 3 the first time it starts.
func run(module, mode string) error {
	policy, _ := pool.ParsePolicy(mode)
	fmt.Printf("== %s\n", mode)

	var once sync.Once
	p, err := pool.New(context.Background(), pool.Config{
		Module:     module,
		Workers:    2,
		KillPolicy: policy,
		// OnEvent sees each task start, with the pid of the worker that
		// runs it: the seed's OOM killer, played by us.
		OnEvent: func(e pool.Event) {
			if e.Kind != pool.EventTaskStart || e.Index != 3 || e.Attempt != 1 {
				return
			}
			once.Do(func() {
				fmt.Printf("kill -9 %d (the worker running task 3)\n", e.WorkerPID)
				if err := syscall.Kill(e.WorkerPID, syscall.SIGKILL); err != nil {
					fmt.Fprintln(os.Stderr, "seed: kill:", err)
				}
			})
		},
	})
	if err != nil {
		return err
	}
	defer p.Close()

	inputs := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	rs, err := pool.MapJSON[int, int](context.Background(), p, "square", inputs)
	for _, r := range rs {
		stats = append(stats, report.RecordOf(r.Result))
	}
	if mode == "abort" {
		var te *pool.TaskError
		if !errors.As(err, &te) {
			return fmt.Errorf("abort: want a *pool.TaskError, got %v", err)
		}
		fmt.Printf("map failed: %v\n", err)
		fmt.Printf("the task that aborted it: index %d, input %s, status %s\n", te.Index, te.Input, te.Status)
		return nil
	}
	if err != nil {
		return err
	}

	// A killed task's slot is empty: nil, like the seed's None.
	slots := make([]any, len(rs))
	for i, r := range rs {
		if r.Status == pool.StatusOK {
			slots[i] = r.Value
		}
	}
	fmt.Println(slots)

	switch mode {
	case "skip":
		fmt.Println("killed tasks:")
		for _, kt := range p.KilledTasks() {
			fmt.Printf("  task %d: %s(%s), status %s after %d attempt(s): %s\n",
				kt.Index, kt.Func, kt.Input, kt.Status, len(kt.Attempts), kt.Reason)
		}
	case "retry":
		fmt.Printf("task 3 ran %d times; killed tasks: %d\n", rs[3].Attempts, len(p.KilledTasks()))
	}
	return nil
}

package pool_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/safepool/safepool/pool"
)

// The examples run squareWasm, a module with two handlers: square, which
// takes an ASCII decimal integer and returns its square, and slow_square,
// which does the same after 30 ms. helpers_test.go says where it comes from.

// A worker is SIGKILLed while it runs task 3, as the OOM killer would. Under
// Retry the task runs again on a new worker, and the map returns every
// square in input order.
func ExamplePool_Map() {
	ctx := context.Background()
	var once sync.Once
	p, err := pool.New(ctx, pool.Config{
		Module:     squareWasm,
		Workers:    2,
		KillPolicy: pool.Retry,
		// Each task start names the worker that runs it: kill the one
		// that starts task 3, once.
		OnEvent: func(e pool.Event) {
			if e.Kind == pool.EventTaskStart && e.Index == 3 {
				once.Do(func() { _ = syscall.Kill(e.WorkerPID, syscall.SIGKILL) })
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	var inputs [][]byte
	for i := range 10 {
		inputs = append(inputs, []byte(strconv.Itoa(i)))
	}
	// slow_square takes 30 ms, time enough for the kill to land mid-task.
	rs, err := p.Map(ctx, "slow_square", inputs)
	if err != nil {
		log.Fatal(err)
	}
	var squares []string
	for _, r := range rs {
		squares = append(squares, string(r.Output))
	}
	fmt.Println(squares)
	fmt.Printf("task 3 ran %d times\n", rs[3].Attempts)
	// Output:
	// [0 1 4 9 16 25 36 49 64 81]
	// task 3 ran 2 times
}

// Imap takes its inputs from an iterator and yields the results in input
// order, with at most window tasks outstanding, so a stream of any length
// runs in bounded memory.
func ExamplePool_Imap() {
	ctx := context.Background()
	p, err := pool.New(ctx, pool.Config{Module: squareWasm, Workers: 2})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	// Any iter.Seq[[]byte] will do: lines of a file, a channel, a generator.
	numbers := func(yield func([]byte) bool) {
		for i := range 6 {
			if !yield([]byte(strconv.Itoa(i))) {
				return
			}
		}
	}
	for r, err := range p.Imap(ctx, "square", numbers, 4) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("task %d: %s %s\n", r.Index, r.Status, r.Output)
	}
	// Output:
	// task 0: ok 0
	// task 1: ok 1
	// task 2: ok 4
	// task 3: ok 9
	// task 4: ok 16
	// task 5: ok 25
}

// Under Skip, the default, a killed task leaves its slot empty and the map
// goes on; KilledTasks says which tasks were killed, with their inputs, so
// that they can be run again or reported.
func ExamplePool_KilledTasks() {
	ctx := context.Background()
	var once sync.Once
	p, err := pool.New(ctx, pool.Config{
		Module:     squareWasm,
		Workers:    2,
		KillPolicy: pool.Skip,
		OnEvent: func(e pool.Event) {
			if e.Kind == pool.EventTaskStart && e.Index == 3 {
				once.Do(func() { _ = syscall.Kill(e.WorkerPID, syscall.SIGKILL) })
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	var inputs [][]byte
	for i := range 10 {
		inputs = append(inputs, []byte(strconv.Itoa(i)))
	}
	rs, err := p.Map(ctx, "slow_square", inputs)
	if err != nil {
		log.Fatal(err) // Skip does not fail the map
	}
	var slots []string
	for _, r := range rs {
		if r.Status == pool.StatusOK {
			slots = append(slots, string(r.Output))
		} else {
			slots = append(slots, "<"+r.Status.String()+">")
		}
	}
	fmt.Println(slots)
	for _, kt := range p.KilledTasks() {
		fmt.Printf("task %d: input %s, status %s, signal %s\n", kt.Index, kt.Input, kt.Status, kt.Signal)
	}
	// Output:
	// [0 1 4 <killed> 16 25 36 49 64 81]
	// task 3: input 3, status killed, signal SIGKILL
}

// When workers cannot be kept up, here because each is SIGKILLed as soon as
// it starts, a map does not wait for them forever: after StartGiveUp it ends
// with a *StartError, which errors.Is matches to ErrCrashLoop.
// A program that wants a pool's counts without a metrics system keeps a
// Tally: as the pool's TaskObserver it counts every attempt and final
// result, with histograms of their durations and peak memory.
func ExampleTally() {
	ctx := context.Background()
	tally, err := pool.NewTally(
		[]time.Duration{time.Millisecond, 10 * time.Millisecond, 100 * time.Millisecond},
		[]int64{1 << 20, 16 << 20},
	)
	if err != nil {
		log.Fatal(err)
	}
	p, err := pool.New(ctx, pool.Config{Module: squareWasm, Workers: 2, TaskObserver: tally})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	var inputs [][]byte
	for i := range 10 {
		inputs = append(inputs, []byte(strconv.Itoa(i)))
	}
	if _, err := p.Map(ctx, "slow_square", inputs); err != nil {
		log.Fatal(err)
	}
	c := tally.Read()
	fmt.Println("ok tasks:", c.Tasks[pool.StatusOK], "attempts:", c.Attempts[pool.StatusOK])
	// slow_square sleeps 30 ms: every attempt is in the bucket up to 100 ms.
	fmt.Println("durations:", c.Duration.Counts)
	fmt.Println("peak memory:", c.PeakMemory.Counts)
	// Output:
	// ok tasks: 10 attempts: 10
	// durations: [0 0 10 0]
	// peak memory: [10 0 0]
}

func ExampleStartError() {
	ctx := context.Background()
	p, err := pool.New(ctx, pool.Config{
		Module:      squareWasm,
		Workers:     1,
		StartGiveUp: 300 * time.Millisecond,
		OnEvent: func(e pool.Event) {
			if e.Kind == pool.EventWorkerStart {
				_ = syscall.Kill(e.WorkerPID, syscall.SIGKILL)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	_, err = p.Map(ctx, "square", [][]byte{[]byte("7")})
	fmt.Println(errors.Is(err, pool.ErrCrashLoop))
	var se *pool.StartError
	if errors.As(err, &se) {
		fmt.Printf("workers %s; the pool keeps trying: %t\n", se.What, se.Usable)
	}
	// Output:
	// true
	// workers killed by SIGKILL before running a task; the pool keeps trying: true
}

//go:build wasip1

// Command stateful is a guest that keeps state between tasks on purpose,
// for the tests of FreshInstance: on a shared instance each handler sees
// what the tasks before it left; on a fresh instance, none of it.
//
//	count    increments a package variable and a heap value: "<var> <heap>"
//	spawn    starts a goroutine that increments a counter whenever it runs
//	         and returns at once: "spawned"
//	ticks    yields to other goroutines a few times, then: "<counter>"
//	close    closes the guest's stdout: "closed"
//	grow     n: allocates n MiB, writes every 512th byte, keeps it live
//	         until the next grow, and returns the sum of the bytes it
//	         found there before writing: "<sum>"
//	clock    the monotonic time since the module started, in
//	         nanoseconds: "<ns>"
package main

import (
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/safepool/safepool/guest"
)

var (
	started = time.Now()
	calls   int
	heap    = new(int)
	ticks   int
	held    [][]byte
)

func init() {
	guest.Handle("count", func([]byte) ([]byte, error) {
		calls++
		*heap++
		return []byte(strconv.Itoa(calls) + " " + strconv.Itoa(*heap)), nil
	})
	guest.Handle("spawn", func([]byte) ([]byte, error) {
		go func() {
			for {
				ticks++
				runtime.Gosched()
			}
		}()
		return []byte("spawned"), nil
	})
	guest.Handle("ticks", func([]byte) ([]byte, error) {
		for range 10 {
			runtime.Gosched()
		}
		return []byte(strconv.Itoa(ticks)), nil
	})
	guest.Handle("clock", func([]byte) ([]byte, error) {
		return []byte(strconv.FormatInt(int64(time.Since(started)), 10)), nil
	})
	guest.Handle("close", func([]byte) ([]byte, error) {
		return []byte("closed"), os.Stdout.Close()
	})
	guest.Handle("grow", func(in []byte) ([]byte, error) {
		n, err := strconv.Atoi(string(in))
		if err != nil {
			return nil, err
		}
		held = make([][]byte, n)
		sum := 0
		for i := range held {
			held[i] = make([]byte, 1<<20)
			for j := 0; j < len(held[i]); j += 512 {
				sum += int(held[i][j])
				held[i][j] = 0xAB
			}
		}
		return []byte(strconv.Itoa(sum)), nil
	})
}

func main() {}

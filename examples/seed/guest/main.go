//go:build wasip1

// Command guest is the seed example's task module: square, with a short
// pause so that a worker can be killed while it runs a task.
//
// Build it with:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o square.wasm ./examples/seed/guest
package main

import (
	"time"

	"github.com/safepool/safepool/guest"
)

func init() {
	guest.HandleJSON("square", func(n int) (int, error) {
		time.Sleep(50 * time.Millisecond)
		return n * n, nil
	})
}

// main is never called: a reactor module runs its init functions when it is
// loaded, then serves calls.
func main() {}

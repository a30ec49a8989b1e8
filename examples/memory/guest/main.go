//go:build wasip1

// Command guest is the memory example's task module. Its handler grow takes
// a number of MiB, allocates that much, touches every page and keeps it all
// live until it returns the number.
package main

import (
	"runtime"

	"github.com/safepool/safepool/guest"
)

func init() {
	guest.HandleJSON("grow", func(mib int) (int, error) {
		chunks := make([][]byte, mib)
		for i := range chunks {
			chunks[i] = make([]byte, 1<<20)
			for j := 0; j < len(chunks[i]); j += 4096 {
				chunks[i][j] = 1
			}
		}
		runtime.KeepAlive(chunks)
		return mib, nil
	})
}

func main() {}

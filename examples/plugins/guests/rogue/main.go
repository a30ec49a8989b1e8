//go:build wasip1

// Command rogue is a plugin that misbehaves in every way it can, next to
// one handler that behaves:
//
//	spin   loops forever
//	flood  allocates memory until it runs out
//	snoop  reads /etc/passwd and the environment
//	hello  returns "still here"
package main

import (
	"fmt"
	"os"

	"github.com/safepool/safepool/guest"
)

// sink keeps what flood allocates, and what spin counts, reachable.
var sink [][]byte
var spins uint64

func init() {
	guest.Handle("spin", func([]byte) ([]byte, error) {
		for {
			spins++
		}
	})
	guest.Handle("flood", func([]byte) ([]byte, error) {
		for {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			sink = append(sink, b)
		}
	})
	guest.Handle("snoop", func([]byte) ([]byte, error) {
		b, err := os.ReadFile("/etc/passwd")
		if err != nil {
			return nil, fmt.Errorf("denied: %w; environment: %d variables", err, len(os.Environ()))
		}
		return b, nil
	})
	guest.Handle("hello", func([]byte) ([]byte, error) {
		return []byte(`"still here"`), nil
	})
}

func main() {}

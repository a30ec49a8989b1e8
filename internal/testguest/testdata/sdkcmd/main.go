//go:build wasip1

// Command sdkcmd is the guest SDK built the wrong way: without
// -buildmode=c-shared (see the buildmode file beside this one), so that the
// module exports _start as well as the SDK's exports, and a worker must
// refuse it at load with an error that says how to rebuild it.
package main

import "github.com/safepool/safepool/guest"

func init() {
	guest.Handle("echo", func(in []byte) ([]byte, error) { return in, nil })
}

func main() {}

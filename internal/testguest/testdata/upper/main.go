//go:build wasip1

// Command upper is a WASI command fixture: it reads all of stdin and writes
// it upper-cased to stdout. Input "fail" makes it write "bad input" to stderr
// and exit with code 3; input "spin" makes it loop forever. Surrounding white
// space is ignored when checking for those two words.
package main

import (
	"bytes"
	"io"
	"os"
)

func main() {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		os.Stderr.WriteString("upper: " + err.Error() + "\n")
		os.Exit(1)
	}
	switch string(bytes.TrimSpace(in)) {
	case "fail":
		os.Stderr.WriteString("bad input\n")
		os.Exit(3)
	case "spin":
		for {
			spins++
		}
	}
	os.Stdout.Write(bytes.ToUpper(in))
}

// spins is written by the spin loop so that it cannot be optimised away.
var spins uint64

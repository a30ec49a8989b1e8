//go:build wasip1

// Command upper is a WASI command fixture: it reads all of stdin and writes
// it upper-cased to stdout. Input "fail" makes it write "bad input" to stderr
// and exit with code 3; input "spin" makes it loop forever. Surrounding white
// space is ignored when checking for those words. Input "grants" writes, as
// is, the environment and the arguments (one per line, then "--"), and the
// content of /data/hello.txt or the error reading it.
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
	case "grants":
		for _, kv := range os.Environ() {
			os.Stdout.WriteString(kv + "\n")
		}
		os.Stdout.WriteString("--\n")
		for _, a := range os.Args {
			os.Stdout.WriteString(a + "\n")
		}
		os.Stdout.WriteString("--\n")
		if b, err := os.ReadFile("/data/hello.txt"); err != nil {
			os.Stdout.WriteString(err.Error())
		} else {
			os.Stdout.Write(b)
		}
		return
	case "spin":
		for {
			spins++
		}
	}
	os.Stdout.Write(bytes.ToUpper(in))
}

// spins is written by the spin loop so that it cannot be optimised away.
var spins uint64

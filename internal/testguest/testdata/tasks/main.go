//go:build wasip1

// Command tasks is the Go SDK fixture: a reactor module with one handler per
// behaviour the pool and the sandbox must handle. Numeric inputs are decimal
// (JSON) integers; the table in internal/testguest's package doc lists what
// each handler does.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/safepool/safepool/guest"
)

func init() {
	guest.HandleJSON("square", square)
	guest.HandleJSON("slow_square", func(n int64) (int64, error) {
		time.Sleep(30 * time.Millisecond)
		return square(n)
	})
	guest.Handle("echo", func(in []byte) ([]byte, error) { return in, nil })
	guest.Handle("fail", func(in []byte) ([]byte, error) { return nil, errors.New("boom: " + string(in)) })
	guest.Handle("panic", func([]byte) ([]byte, error) { panic("kaboom") })
	guest.Handle("memhog", number(memhog))
	guest.Handle("spin", spin)
	guest.Handle("sleep", number(func(ms int) ([]byte, error) {
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return []byte("slept"), nil
	}))
	guest.Handle("stderr", number(func(kib int) ([]byte, error) {
		_, err := os.Stderr.Write(kibibytes(kib, 'e'))
		return []byte("ok"), err
	}))
	guest.Handle("stdout", number(func(kib int) ([]byte, error) {
		_, err := fmt.Print(string(kibibytes(kib, 'o')))
		return []byte("ok"), err
	}))
	guest.Handle("big", number(func(kib int) ([]byte, error) { return kibibytes(kib, 'x'), nil }))
	guest.Handle("garbage", garbage)
	guest.Handle("hold", number(hold))
	guest.Handle("exit", number(func(code int) ([]byte, error) {
		os.Exit(code)
		return nil, nil
	}))
	guest.Handle("recurse", func([]byte) ([]byte, error) {
		return []byte(strconv.Itoa(recurse(0))), nil
	})
	guest.Handle("env", env)
	guest.Handle("readfile", readfile)
	guest.Handle("writefile", writefile)
	guest.Handle("symlink", symlink)
	guest.Handle("callhost", callhost)
}

func square(n int64) (int64, error) { return n * n, nil }

// number adapts a handler of one decimal integer input.
func number(fn func(int) ([]byte, error)) func([]byte) ([]byte, error) {
	return func(in []byte) ([]byte, error) {
		n, err := strconv.Atoi(strings.TrimSpace(string(in)))
		if err != nil {
			return nil, fmt.Errorf("input is not an integer: %w", err)
		}
		return fn(n)
	}
}

func kibibytes(n int, c byte) []byte {
	return []byte(strings.Repeat(string(c), n<<10))
}

// memhog allocates n MiB, writes to every page and keeps it all live until
// it returns.
func memhog(n int) ([]byte, error) {
	chunks := make([][]byte, n)
	for i := range chunks {
		chunks[i] = make([]byte, 1<<20)
		for j := 0; j < len(chunks[i]); j += 4096 {
			chunks[i][j] = byte(i + j)
		}
	}
	runtime.KeepAlive(chunks)
	return []byte(strconv.Itoa(n)), nil
}

// counter is written by spin so that its loop cannot be optimised away.
var counter uint64

// spin never returns and never calls anything that could yield.
func spin([]byte) ([]byte, error) {
	for {
		counter++
	}
}

// sink keeps garbage's buffer from being optimised away.
var sink []byte

// garbage allocates 1 MiB that is garbage once the next call replaces it.
func garbage([]byte) ([]byte, error) {
	b := make([]byte, 1<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	sink = b
	return []byte(strconv.Itoa(len(b))), nil
}

// held is what hold keeps live.
var held [][]byte

// hold keeps n MiB live, written to, until the next call of hold.
func hold(n int) ([]byte, error) {
	held = make([][]byte, n)
	for i := range held {
		held[i] = make([]byte, 1<<20)
		for j := 0; j < len(held[i]); j += 4096 {
			held[i][j] = 1
		}
	}
	return []byte(strconv.Itoa(n)), nil
}

// recurse never returns: each frame holds a little stack and needs its
// callee's result, so the stack grows until the runtime gives up.
func recurse(n int) int {
	var pad [64]byte
	pad[n%64] = byte(n)
	return recurse(n+1) + int(pad[(n+1)%64])
}

func env([]byte) ([]byte, error) {
	return json.Marshal(struct {
		Env  []string `json:"env"`
		Args []string `json:"args"`
	}{os.Environ(), os.Args})
}

// readfile reports what the sandbox lets a guest see of the filesystem: the
// file named by the input and the root directory.
func readfile(in []byte) ([]byte, error) {
	var r struct {
		Content      string   `json:"content,omitempty"`
		ReadError    string   `json:"read_error,omitempty"`
		Entries      []string `json:"entries,omitempty"`
		ReadDirError string   `json:"readdir_error,omitempty"`
	}
	if b, err := os.ReadFile(string(in)); err != nil {
		r.ReadError = err.Error()
	} else {
		r.Content = string(b)
	}
	if entries, err := os.ReadDir("/"); err != nil {
		r.ReadDirError = err.Error()
	} else {
		for _, e := range entries {
			r.Entries = append(r.Entries, e.Name())
		}
	}
	return json.Marshal(r)
}

// writefile writes what follows the input's first line to the file it
// names; "ok", or the error.
func writefile(in []byte) ([]byte, error) {
	name, content, _ := strings.Cut(string(in), "\n")
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		return nil, err
	}
	return []byte("ok"), nil
}

// symlink makes a symlink: input "target\nname"; "ok", or the error.
func symlink(in []byte) ([]byte, error) {
	target, name, _ := strings.Cut(string(in), "\n")
	if err := os.Symlink(target, name); err != nil {
		return nil, err
	}
	return []byte("ok"), nil
}

// callhost calls a host function: input "name\ninput"; output "got:" and
// the host function's output, or "host error:" and its error, so that a
// failed call is seen to come back to the guest, which goes on.
func callhost(in []byte) ([]byte, error) {
	name, arg, _ := strings.Cut(string(in), "\n")
	out, err := guest.CallHost(name, []byte(arg))
	if err != nil {
		var he *guest.HostError
		if !errors.As(err, &he) {
			return nil, fmt.Errorf("not a *guest.HostError: %T", err)
		}
		return []byte("host error: " + err.Error()), nil
	}
	return append([]byte("got:"), out...), nil
}

// main is never called: a reactor runs init and then serves calls.
func main() {}

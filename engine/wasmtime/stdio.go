//go:build cgo

package wasmtime

/*
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

// The declarations of wasmtime's C API (v39, wasi.h and wasm.h) this file
// needs, repeated as in memory.go: the headers live in wasmtime-go's module
// directory, which no #include path can name.
typedef struct wasi_config_t wasi_config_t;
typedef struct sp_byte_vec {
	size_t size;
	char *data;
} sp_byte_vec;
extern void wasm_byte_vec_new(sp_byte_vec *out, size_t size, const char *data);
extern void wasi_config_set_stdin_bytes(wasi_config_t *config, sp_byte_vec *binary);
extern void wasi_config_set_stdout_custom(wasi_config_t *config,
	ptrdiff_t (*callback)(void *, const unsigned char *, size_t), void *data, void (*finalizer)(void *));
extern void wasi_config_set_stderr_custom(wasi_config_t *config,
	ptrdiff_t (*callback)(void *, const unsigned char *, size_t), void *data, void (*finalizer)(void *));

// sp_write writes a guest's stdout or stderr bytes whole to the pipe whose
// write end is data. wasmtime calls it from a thread of its own.
static ptrdiff_t sp_write(void *data, const unsigned char *buf, size_t n) {
	int fd = (int)(intptr_t)data;
	size_t done = 0;
	while (done < n) {
		ssize_t w = write(fd, buf + done, n - done);
		if (w < 0) {
			if (errno == EINTR) continue;
			return -errno;
		}
		done += (size_t)w;
	}
	return (ptrdiff_t)n;
}

static void sp_set_stdio(void *config, const char *in, size_t in_len, int out, int err) {
	wasi_config_t *c = config;
	sp_byte_vec v;
	wasm_byte_vec_new(&v, in_len, in); // a copy, which wasmtime owns
	wasi_config_set_stdin_bytes(c, &v);
	wasi_config_set_stdout_custom(c, sp_write, (void *)(intptr_t)out, NULL);
	wasi_config_set_stderr_custom(c, sp_write, (void *)(intptr_t)err, NULL);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"unsafe"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"golang.org/x/sys/unix"
)

// stdio is the WASI stdio of an instance granted directories (wasi.go says
// why the others have the engine's own). Stdin is h.Stdin, given to wasmtime
// as bytes. Stdout and stderr are pipes, which wasmtime's fd_write fills
// from a thread of its own (a Go callback from that thread would wait
// forever: a worker runs inside its program's init, and Go holds back
// callbacks from C threads until init is done). A goroutine empties each
// pipe into its writer, and flush takes what is left once a call returns,
// so that a task's log and output are complete, and only its own, when the
// call returns.
//
// wasmtime-go can point stdio only at files (a guest could fill the disk),
// so the C API's bytes and callback variants are called directly. WASI
// keeps fd_read and fd_write for every descriptor, so the files of granted
// directories are read and written by wasmtime itself.
type stdio struct {
	pipes []*pipe
}

// setStdio gives cfg's WASI its stdio: stderr goes to log, and stdout to
// stdout, or when that is nil to log through the same pipe as stderr, so
// that the order of the two is kept.
func setStdio(cfg *wasmtime.WasiConfig, stdin []byte, stdout, log io.Writer) (*stdio, error) {
	s := &stdio{}
	errp, err := newPipe(log)
	if err != nil {
		return nil, err
	}
	s.pipes = append(s.pipes, errp)
	out := errp
	if stdout != nil {
		if out, err = newPipe(stdout); err != nil {
			s.close()
			return nil, err
		}
		s.pipes = append(s.pipes, out)
	}
	p := *(*unsafe.Pointer)(unsafe.Pointer(cfg)) // WasiConfig's first field is its *C.wasi_config_t
	var in *C.char
	if len(stdin) > 0 {
		in = (*C.char)(unsafe.Pointer(&stdin[0]))
	}
	C.sp_set_stdio(p, in, C.size_t(len(stdin)), C.int(out.w), C.int(errp.w))
	runtime.KeepAlive(cfg)
	runtime.KeepAlive(stdin)
	return s, nil
}

// begin comes before each call. The pipes' goroutines write to the
// writers only while a call runs (the guest writes nothing between calls),
// but only the pipes' locks tell Go's memory model so: taking each once
// here orders what the caller did with a writer before the call ahead of
// the goroutine's next write to it.
func (s *stdio) begin() {
	if s == nil {
		return
	}
	for _, p := range s.pipes {
		p.mu.Lock()
		//lint:ignore SA2001 an empty critical section, for the ordering alone
		p.mu.Unlock()
	}
}

// flush moves every byte the guest has written so far to the writers. A
// nil stdio has nothing to flush.
func (s *stdio) flush() {
	if s == nil {
		return
	}
	for _, p := range s.pipes {
		p.mu.Lock()
		p.drain()
		p.mu.Unlock()
	}
}

// close flushes and closes the pipes. wasmtime must be done with their
// write ends (the store closed): a write to a pipe without a reader would
// raise SIGPIPE in wasmtime's thread.
func (s *stdio) close() {
	if s == nil {
		return
	}
	for _, p := range s.pipes {
		_ = unix.Close(p.w)
		<-p.done // the reader saw EOF: every byte is in the writer
		_ = p.r.Close()
	}
	s.pipes = nil
}

// pipe carries one stream. The reader goroutine and flush drain it under
// mu, so a byte that has left the pipe is in dst by the time flush holds mu.
type pipe struct {
	r    *os.File // non-blocking, polled by the reader goroutine
	rfd  int
	w    int // blocking: wasmtime's writes wait for room
	mu   sync.Mutex
	dst  io.Writer
	buf  []byte
	eof  bool
	done chan struct{}
}

func newPipe(dst io.Writer) (*pipe, error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("wasmtime: make a pipe for the guest's stdio: %w", err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		_ = unix.Close(fds[0])
		_ = unix.Close(fds[1])
		return nil, fmt.Errorf("wasmtime: make a pipe for the guest's stdio: %w", err)
	}
	p := &pipe{r: os.NewFile(uintptr(fds[0]), "guest stdio"), rfd: fds[0], w: fds[1], dst: dst, buf: make([]byte, 32<<10), done: make(chan struct{})}
	go p.read()
	return p, nil
}

func (p *pipe) read() {
	defer close(p.done)
	rc, err := p.r.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Read(func(uintptr) bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.drain()
		return p.eof // false: wait until the pipe is readable again
	})
}

// drain reads the pipe until it is empty, into dst. Called with mu held.
func (p *pipe) drain() {
	for !p.eof {
		n, err := unix.Read(p.rfd, p.buf)
		switch {
		case n > 0:
			_, _ = p.dst.Write(p.buf[:n]) // the writers take every byte (engine.Host.Log)
		case n == 0 && err == nil:
			p.eof = true
		case errors.Is(err, unix.EINTR):
		default: // EAGAIN: empty for now
			return
		}
	}
}

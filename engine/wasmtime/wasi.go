//go:build cgo

package wasmtime

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// wasmtime's WASI runs everything but a few functions, which the engine
// replaces with its own so that they behave as under wazero:
//
//   - poll_oneoff sleeps through engine.Host.Sleep, which the watchdog can
//     cut short. wasmtime's own sleep cannot be interrupted: epoch deadlines are
//     checked only in compiled code, so a guest asleep past its timeout
//     would stay asleep.
//   - path_symlink fails with EPERM, as wazero's granted directories
//     (internal/engine/wazero/fs.go) refuse it: a symlink a guest made in
//     a writable directory would point wherever it likes for the host
//     programs that later read that directory, even though wasmtime itself
//     never follows one out of a preopen.
//   - fd_write on stdout and stderr, and fd_read on stdin, for an instance
//     that was granted no directories: they go to the instance's bounded
//     buffers, synchronously, in Go, so that each task's log and output are
//     complete when its call returns. With no preopened directories, fds 0,
//     1 and 2 are the only ones such a guest can have.
//
// An instance that was granted directories keeps WASI's fd_read and
// fd_write, which its files need (a host function cannot hand a call on to
// WASI's: WASI finds the guest's memory through the instance that called
// it), and gets its stdio through pipes (stdio.go). That costs thread
// switches per write, tens of µs instead of a few (BenchmarkCall), so it
// is used only there.

// WASI errno values.
const (
	errnoSuccess = 0
	errnoBadf    = 8
	errnoFault   = 21
	errnoInval   = 28
	errnoNotsup  = 58
	errnoPerm    = 63
)

var le = binary.LittleEndian

// defineWASI defines WASI in linker, with the engine's replacements, and
// those of stdio when stdio is set.
func defineWASI(linker *wasmtime.Linker, stdio bool) error {
	if err := linker.DefineWasi(); err != nil {
		return err
	}
	linker.AllowShadowing(true)
	i32 := wasmtime.NewValType(wasmtime.KindI32)
	four := wasmtime.NewFuncType([]*wasmtime.ValType{i32, i32, i32, i32}, []*wasmtime.ValType{i32})
	five := wasmtime.NewFuncType([]*wasmtime.ValType{i32, i32, i32, i32, i32}, []*wasmtime.ValType{i32})
	type replacement struct {
		name string
		ty   *wasmtime.FuncType
		f    func(*guest, []wasmtime.Val) (int32, *wasmtime.Trap)
	}
	funcs := []replacement{
		{"poll_oneoff", four, pollOneoff},
		{"path_symlink", five, func(*guest, []wasmtime.Val) (int32, *wasmtime.Trap) { return errnoPerm, nil }},
	}
	if stdio {
		funcs = append(funcs, replacement{"fd_write", four, fdWrite}, replacement{"fd_read", four, fdRead})
	}
	for _, d := range funcs {
		f := d.f
		err := linker.FuncNew("wasi_snapshot_preview1", d.name, d.ty, func(c *wasmtime.Caller, args []wasmtime.Val) (res []wasmtime.Val, trap *wasmtime.Trap) {
			g := guestOf(c)
			defer trapOnPanic(&trap)
			errno, trap := f(g, args)
			if trap != nil {
				return nil, trap
			}
			return []wasmtime.Val{wasmtime.ValI32(errno)}, nil
		})
		if err != nil {
			return err
		}
	}
	linker.AllowShadowing(false)
	return nil
}

// trapOnPanic turns a panic in a host function into a trap. wasmtime-go
// would otherwise carry the panic through the guest and re-raise it in the
// worker, which would die of it.
func trapOnPanic(trap **wasmtime.Trap) {
	if r := recover(); r != nil {
		*trap = wasmtime.NewTrap(fmt.Sprint(r))
	}
}

func u32(v wasmtime.Val) uint32 { return uint32(v.I32()) }

// iovecs calls f on each buffer of a WASI iovec array and stores the total
// it returns at resultPtr.
func iovecs(g *guest, iovs, n, resultPtr uint32, f func([]byte) int) int32 {
	if uint64(n)*8 >= 1<<32 {
		return errnoFault
	}
	vec, ok := g.mem.bytes(iovs, n*8)
	if !ok {
		return errnoFault
	}
	total := 0
	for i := range n {
		ptr, size := le.Uint32(vec[i*8:]), le.Uint32(vec[i*8+4:])
		b, ok := g.mem.bytes(ptr, size)
		if !ok {
			return errnoFault
		}
		m := f(b)
		total += m
		if m < len(b) {
			break
		}
	}
	out, ok := g.mem.bytes(resultPtr, 4)
	if !ok {
		return errnoFault
	}
	le.PutUint32(out, uint32(total))
	return errnoSuccess
}

func fdWrite(g *guest, args []wasmtime.Val) (int32, *wasmtime.Trap) {
	var w io.Writer
	switch u32(args[0]) {
	case 1:
		w = g.host.Log
		if g.host.Stdout != nil {
			w = g.host.Stdout
		}
	case 2:
		w = g.host.Log
	default:
		return errnoBadf, nil
	}
	return iovecs(g, u32(args[1]), u32(args[2]), u32(args[3]), func(b []byte) int {
		n, _ := w.Write(b) // both writers take every byte, keeping only what fits
		return n
	}), nil
}

func fdRead(g *guest, args []wasmtime.Val) (int32, *wasmtime.Trap) {
	if u32(args[0]) != 0 {
		return errnoBadf, nil
	}
	return iovecs(g, u32(args[1]), u32(args[2]), u32(args[3]), func(b []byte) int {
		n := copy(b, g.host.Stdin[g.stdinOff:])
		g.stdinOff += n
		return n
	}), nil
}

// pollOneoff follows wazero's poll_oneoff: relative clocks sleep for the
// shortest timeout, absolute ones are not supported, stdio is always
// ready (stdin is a buffer), and any other fd is EBADF: the table of
// WASI's descriptors is wasmtime's, out of reach here. A granted
// directory's files are regular files, which no guest needs to poll (Go's
// wasip1 runtime polls only descriptors in non-blocking mode).
func pollOneoff(g *guest, args []wasmtime.Val) (int32, *wasmtime.Trap) {
	in, out, nsubs, neventsPtr := u32(args[0]), u32(args[1]), u32(args[2]), u32(args[3])
	if nsubs == 0 {
		return errnoInval, nil
	}
	if uint64(nsubs)*48 >= 1<<32 {
		return errnoFault, nil
	}
	subs, ok := g.mem.bytes(in, nsubs*48)
	if !ok {
		return errnoFault, nil
	}
	events, ok := g.mem.bytes(out, nsubs*32)
	if !ok {
		return errnoFault, nil
	}
	// Read every subscription before writing any event: the guest may have
	// made the two areas overlap.
	type sub struct {
		userdata   [8]byte
		tag        uint8
		fd         uint32
		timeout    uint64
		clockFlags uint16
		eventErrno uint16
	}
	list := make([]sub, nsubs)
	for i := range list {
		s := subs[i*48 : i*48+48]
		copy(list[i].userdata[:], s[:8])
		list[i].tag = s[8]
		list[i].fd = le.Uint32(s[16:])
		list[i].timeout = le.Uint64(s[24:])
		list[i].clockFlags = le.Uint16(s[40:])
	}
	sleep := time.Duration(-1)
	for i := range list {
		s := &list[i]
		switch s.tag {
		case 0: // clock
			switch s.clockFlags {
			case 0:
			case 1: // subscription_clock_abstime
				return errnoNotsup, nil
			default:
				return errnoInval, nil
			}
			d := time.Duration(min(s.timeout, 1<<63-1))
			if sleep < 0 || d < sleep {
				sleep = d
			}
		case 1: // fd_read
			if s.fd > 2 {
				s.eventErrno = errnoBadf
			}
		case 2: // fd_write
			s.eventErrno = errnoNotsup
			if s.fd > 2 {
				s.eventErrno = errnoBadf
			}
		default:
			return errnoInval, nil
		}
	}
	clear(events)
	for i, s := range list {
		ev := events[i*32 : i*32+32]
		copy(ev[:8], s.userdata[:])
		le.PutUint16(ev[8:], s.eventErrno)
		ev[10] = s.tag
	}
	nevents, ok := g.mem.bytes(neventsPtr, 4)
	if !ok {
		return errnoFault, nil
	}
	le.PutUint32(nevents, nsubs)
	if sleep > 0 && !g.host.Sleep(int64(sleep)) {
		return 0, wasmtime.NewTrap("interrupted: the task ran past its timeout")
	}
	return errnoSuccess, nil
}

//go:build cgo

package wasmtime

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// wasmtime's WASI runs everything but two functions, which the engine
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
//
// Stdio is WASI's own, pointed at the instance's buffers (stdio.go), so
// fd_read and fd_write serve the files of granted directories as well.

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

func (e *compiled) defineWASI() error {
	if err := e.linker.DefineWasi(); err != nil {
		return err
	}
	e.linker.AllowShadowing(true)
	i32 := wasmtime.NewValType(wasmtime.KindI32)
	four := wasmtime.NewFuncType([]*wasmtime.ValType{i32, i32, i32, i32}, []*wasmtime.ValType{i32})
	five := wasmtime.NewFuncType([]*wasmtime.ValType{i32, i32, i32, i32, i32}, []*wasmtime.ValType{i32})
	for _, d := range []struct {
		name string
		ty   *wasmtime.FuncType
		f    func(*guest, []wasmtime.Val) (int32, *wasmtime.Trap)
	}{
		{"poll_oneoff", four, pollOneoff},
		{"path_symlink", five, func(*guest, []wasmtime.Val) (int32, *wasmtime.Trap) { return errnoPerm, nil }},
	} {
		f := d.f
		err := e.linker.FuncNew("wasi_snapshot_preview1", d.name, d.ty, func(c *wasmtime.Caller, args []wasmtime.Val) (res []wasmtime.Val, trap *wasmtime.Trap) {
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
	e.linker.AllowShadowing(false)
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

package wazero

import (
	"context"
	"errors"
	"fmt"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/safepool/safepool/internal/engine"
)

// resettable returns the binary to compile for opts: for
// engine.Options.Resettable, exportGlobals' binary and its globals' export
// names, when the module's instances can be reset; otherwise wasm as it
// is, and false.
func resettable(wasm []byte, opts engine.Options) ([]byte, []string, bool) {
	if !opts.Resettable {
		return wasm, nil, false
	}
	bin, globals, err := exportGlobals(wasm)
	if err != nil {
		return wasm, nil, false // instances are made anew; module.Inspect reports a bad module
	}
	return bin, globals, true
}

// snapshot is what a guest is reset to.
type snapshot struct {
	taken   bool
	globals []api.MutableGlobal
	values  []uint64
	nanos   int64 // the monotonic clock's last reading (clock.go)

	// wasiChanged is set when the guest called a WASI function that
	// changes its file table or a descriptor's flags (wasiListener):
	// wazero does not let the host restore those.
	wasiChanged bool
}

// wasiChanges are the WASI functions that change state the host cannot
// restore: the file table and descriptors' flags. With no directory
// granted (Snapshot refuses instances with one), a guest's only
// descriptors are its stdio.
var wasiChanges = map[string]bool{
	"fd_close": true, "fd_renumber": true, "fd_fdstat_set_flags": true, "fd_fdstat_set_rights": true,
	"path_open": true, "sock_accept": true, "sock_shutdown": true,
}

// wasiListener is the listener factory of the WASI host module of a
// resettable module: a call to one of wasiChanges marks the guest
// running it, whose next Reset then refuses. Other WASI functions get no
// listener and cost nothing more.
func (c *compiled) wasiListener(def api.FunctionDefinition) experimental.FunctionListener {
	if !wasiChanges[def.Name()] {
		return nil
	}
	return wasiMark{c}
}

type wasiMark struct{ c *compiled }

func (m wasiMark) Before(context.Context, api.Module, api.FunctionDefinition, []uint64, experimental.StackIterator) {
	if g := m.c.cur; g != nil {
		g.snap.wasiChanged = true
	}
}

func (wasiMark) After(context.Context, api.Module, api.FunctionDefinition, []uint64) {}

func (wasiMark) Abort(context.Context, api.Module, api.FunctionDefinition, error) {}

// Snapshot implements engine.Resetter: it saves the mutable globals'
// values and the monotonic clock's last reading (clock.go), and makes the
// linear memory a copy-on-write mapping of a snapshot of itself
// (snapshot.go), whose written pages the kernel tracks if it can
// (wptrack.go).
func (g *guest) Snapshot() error {
	switch {
	case !g.c.resettable:
		return errors.New("the module was not compiled to be reset")
	case g.snap.taken:
		return errors.New("the instance already has a snapshot")
	case g.unmount != nil:
		return errors.New("an instance with granted directories cannot be reset: their descriptors' state is not restored")
	}
	s := snapshot{globals: make([]api.MutableGlobal, len(g.c.globals)), values: make([]uint64, len(g.c.globals))}
	for i, name := range g.c.globals {
		mg, ok := g.mod.ExportedGlobal(name).(api.MutableGlobal)
		if !ok {
			return fmt.Errorf("global export %s is missing or not mutable", name)
		}
		s.globals[i], s.values[i] = mg, mg.Get()
	}
	if g.cap.mem != nil {
		if err := g.cap.mem.snapshot(); err != nil {
			return err
		}
	}
	s.nanos = g.clock.last.Load()
	s.taken = true
	g.snap = s
	return nil
}

// Reset implements engine.Resetter.
func (g *guest) Reset() bool {
	s := &g.snap
	if !s.taken || s.wasiChanged || g.mod.IsClosed() {
		return false
	}
	if g.cap.mem != nil && !g.cap.mem.reset() {
		return false
	}
	for i, mg := range s.globals {
		mg.Set(s.values[i])
	}
	g.clock.rewind(s.nanos)
	return true
}

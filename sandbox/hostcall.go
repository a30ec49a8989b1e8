package sandbox

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/safepool/safepool/internal/wire"
)

// hostCalls is the worker's side of guest calls to host functions: the
// frame reader it waits for replies on, the batches that arrived while it
// waited, the task running, and the reply waiting for safepool.host_take.
type hostCalls struct {
	r     *wire.Reader
	stash [][]byte // batch frames read while waiting for a reply, in order
	task  uint64
	reply []byte
}

// hostCall is engine.Host.HostCall: it sends the call to the host, waits
// for the answer and keeps it for hostTake. Every failure comes back to
// the guest as an error, never as a trap: an unknown name, an input over
// the output cap, an error or a panic in the host function, the task's
// deadline. Only a host that is gone ends the worker.
func (w *worker) hostCall(name, in []byte, deadline int64) int32 {
	out, err := w.callHost(string(name), in, deadline)
	if err != nil {
		w.hc.reply = []byte(err.Error())
		return -1 - int32(len(w.hc.reply))
	}
	w.hc.reply = out
	return int32(len(out))
}

// hostTake is engine.Host.HostTake.
func (w *worker) hostTake() []byte {
	b := w.hc.reply
	w.hc.reply = nil
	return b
}

// maxHostPayload caps a host call's input and output when the pool's
// output cap is larger: the reply must fit in an int32 length.
const maxHostPayload = 1 << 30

func (w *worker) hostPayloadLimit() int {
	return int(min(w.cfg.OutputLimit, maxHostPayload))
}

func (w *worker) callHost(name string, in []byte, deadline int64) ([]byte, error) {
	if !slices.Contains(w.cfg.HostFuncs, name) {
		return nil, fmt.Errorf("no host function %q; the pool provides %q", name, w.cfg.HostFuncs)
	}
	if limit := w.hostPayloadLimit(); len(in) > limit {
		return nil, fmt.Errorf("host function %s: input of %s is over the cap of %s", name, formatSize(uint64(len(in))), formatSize(uint64(limit)))
	}
	w.flush() // results before the call, in order
	call := wire.HostCall{Task: w.hc.task, Name: name, Input: in, Deadline: deadline}
	if err := w.w.Send(wire.TypeHostCall, wire.AppendHostCall(nil, &call)); err != nil {
		w.gone(err)
	}
	for {
		typ, p, err := w.hc.r.Read()
		if err != nil {
			w.gone(err)
		}
		switch typ {
		case wire.TypeHostReply:
			rep, err := wire.DecodeHostReply(p)
			if err != nil {
				_ = w.fatal(wire.FatalProtocol, err.Error())
				w.gone(err)
			}
			if rep.Failed {
				return nil, fmt.Errorf("host function %s: %s", name, rep.Error)
			}
			return bytes.Clone(rep.Output), nil
		case wire.TypeBatch:
			// The host queues at most one batch behind the running one;
			// it runs after this one.
			w.hc.stash = append(w.hc.stash, bytes.Clone(p))
		default:
			_ = w.fatal(wire.FatalProtocol, fmt.Sprintf("unexpected %s frame during a host call", typ))
			w.gone(fmt.Errorf("unexpected %s frame", typ))
		}
	}
}

// gone ends a worker whose host is gone (or broke the protocol) in the
// middle of a host call: there is nobody to report to.
func (w *worker) gone(error) {
	w.end.Slot.SetRunning(0, 0)
	exit(0)
}

// setTask records the task that host calls are made for.
func (w *worker) setTask(id uint64) { w.hc.task = id }

package wire

import (
	"bytes"
	"fmt"
	"time"
)

// Status is how one task ended. The values are part of the protocol.
type Status uint8

// Task statuses. StatusKilled is never sent by a worker: the host assigns it
// when the worker dies.
const (
	StatusOK          Status = 1
	StatusError       Status = 2
	StatusKilled      Status = 3
	StatusMemoryLimit Status = 4
	StatusTimeout     Status = 5
)

// Valid reports whether s is one of the defined statuses.
func (s Status) Valid() bool { return s >= StatusOK && s <= StatusTimeout }

// Kind says how a worker runs its module.
type Kind uint8

// Module kinds.
const (
	KindSDK     Kind = 1 // exports the safepool guest ABI
	KindCommand Kind = 2 // a WASI command: stdin in, stdout out, fresh instance per task
)

// Init is the first frame the host sends. It configures the worker.
type Init struct {
	Version       uint32
	ModulePath    string        // the .wasm file to load
	CacheDir      string        // compilation cache shared by all workers; "" for none
	Engine        string        // "wazero" or "wasmtime"
	MemoryLimit   uint64        // default per-task linear memory cap, bytes
	Timeout       time.Duration // each task's timeout; 0 for none
	OutputLimit   uint64        // largest output a task may return, bytes
	LogLimit      uint64        // tail of guest stdout/stderr kept per task, bytes
	FreshInstance bool          // a new instance for every task
	Events        bool          // send TypeStarted before each task
	ProcessLimit  uint64        // address-space backstop for the whole worker, bytes; 0 for none
	// StartTimeout bounds each instance's start-up: its _initialize and, at
	// the handshake, the SDK calls that ask for its ABI version and its
	// handlers. 0 for none (the host still kills a worker whose handshake
	// takes too long). Timeout never applies to start-up.
	StartTimeout time.Duration
	// Grants: the guest's environment ("KEY=VALUE" entries), its arguments
	// after the program name, and the directories it may open. Empty:
	// nothing is granted.
	Env     []string
	Args    []string
	Program string // argv[0] when Args are granted: the module's file name
	Dirs    []Dir
	// HostFuncs names the host functions a guest may call (TypeHostCall);
	// a call of any other name fails in the worker.
	HostFuncs []string
}

// HostCall is a guest's call of a host function, made while task Task runs.
type HostCall struct {
	Task     uint64
	Name     string
	Input    []byte
	Deadline int64 // the task's deadline, Unix nanoseconds; 0 for none
}

// HostReply is the host function's answer: its output, or when Error is
// set, why it failed.
type HostReply struct {
	Output []byte
	Error  string
	Failed bool
}

// AppendHostCall appends the encoding of m to b.
func AppendHostCall(b []byte, m *HostCall) []byte {
	return enc(b).uint(m.Task).str(m.Name).bytes(m.Input).int(m.Deadline)
}

// DecodeHostCall decodes a HostCall payload; its Input is a copy.
func DecodeHostCall(p []byte) (*HostCall, error) {
	d := dec{b: p}
	m := &HostCall{Task: d.uint("task id"), Name: d.str("name"), Input: bytes.Clone(d.view("input")), Deadline: d.int("deadline")}
	return m, d.end("host call")
}

// AppendHostReply appends the encoding of m to b.
func AppendHostReply(b []byte, m *HostReply) []byte {
	return enc(b).bool(m.Failed).bytes(m.Output).str(m.Error)
}

// DecodeHostReply decodes a HostReply payload. Output is a view of p.
func DecodeHostReply(p []byte) (*HostReply, error) {
	d := dec{b: p}
	m := &HostReply{Failed: d.bool("failed"), Output: d.view("output"), Error: d.str("error")}
	return m, d.end("host reply")
}

// Dir is a host directory granted to the guest at GuestPath.
type Dir struct {
	HostPath  string
	GuestPath string
	Writable  bool
}

// Ready is the worker's answer to Init.
type Ready struct {
	Version  uint32
	Kind     Kind
	Handlers []string // handler names of an SDK module
}

// Task is one unit of work.
type Task struct {
	ID          uint64 // chosen by the host, echoed in the result
	Func        string // handler name; ignored by command modules
	Input       []byte // the handler's input; a command module's stdin
	MemoryLimit uint64 // overrides Init.MemoryLimit when non-zero
	// Timeout overrides Init.Timeout when non-zero and shorter. A worker
	// whose Init.Timeout is 0 has no way to stop a task (see
	// engine.Options.NoInterrupt), so the host sends it none.
	Timeout time.Duration
}

// Result is the outcome of one task.
type Result struct {
	ID         uint64
	Status     Status
	Output     []byte
	Error      string
	Start, End int64  // Unix nanoseconds
	PeakMemory uint64 // peak linear memory of the instance, bytes
	Log        []byte // tail of the guest's stderr (and stdout for SDK modules)
}

// Fatal tells the host why a worker cannot go on.
type Fatal struct {
	Code    FatalCode
	Message string
}

// FatalCode classifies a Fatal message.
type FatalCode uint32

// Fatal codes.
const (
	FatalInternal FatalCode = 1 // a bug or an unexpected host error
	FatalVersion  FatalCode = 2 // protocol version mismatch
	FatalModule   FatalCode = 3 // the module cannot be loaded or instantiated
	FatalProtocol FatalCode = 4 // the host sent something malformed
	// FatalInstantiate: the module compiled (or loaded from the cache) but
	// instantiating it failed. A damaged compilation-cache entry can cause
	// this, so the host may forget the entry and try once more.
	FatalInstantiate FatalCode = 5
)

func (f *Fatal) Error() string { return fmt.Sprintf("worker: %s", f.Message) }

// AppendInit appends the encoding of m to b.
func AppendInit(b []byte, m *Init) []byte {
	e := enc(b).uint(uint64(m.Version)).str(m.ModulePath).str(m.CacheDir).str(m.Engine).
		uint(m.MemoryLimit).int(int64(m.Timeout)).uint(m.OutputLimit).uint(m.LogLimit).
		bool(m.FreshInstance).bool(m.Events).uint(m.ProcessLimit).int(int64(m.StartTimeout))
	e = e.strs(m.Env).strs(m.Args).str(m.Program).uint(uint64(len(m.Dirs)))
	for _, d := range m.Dirs {
		e = e.str(d.HostPath).str(d.GuestPath).bool(d.Writable)
	}
	return e.strs(m.HostFuncs)
}

// DecodeInit decodes an Init payload. An Init of another protocol version
// decodes to its Version alone, since the rest of its layout may differ:
// the worker then reports the mismatch rather than a malformed frame.
func DecodeInit(p []byte) (*Init, error) {
	d := dec{b: p}
	version := d.u32("version")
	if d.err == nil && version != Version {
		return &Init{Version: version}, nil
	}
	m := &Init{
		Version:       version,
		ModulePath:    d.str("module path"),
		CacheDir:      d.str("cache dir"),
		Engine:        d.str("engine"),
		MemoryLimit:   d.uint("memory limit"),
		Timeout:       time.Duration(d.int("timeout")),
		OutputLimit:   d.uint("output limit"),
		LogLimit:      d.uint("log limit"),
		FreshInstance: d.bool("fresh instance"),
		Events:        d.bool("events"),
		ProcessLimit:  d.uint("process limit"),
		StartTimeout:  time.Duration(d.int("start timeout")),
	}
	m.Env = d.strs("env")
	m.Args = d.strs("args")
	m.Program = d.str("program")
	if n := d.count("dir count", 3); n > 0 {
		m.Dirs = make([]Dir, n)
		for i := range m.Dirs {
			m.Dirs[i] = Dir{HostPath: d.str("dir host path"), GuestPath: d.str("dir guest path"), Writable: d.bool("dir writable")}
		}
	}
	m.HostFuncs = d.strs("host funcs")
	return m, d.end("init")
}

// AppendReady appends the encoding of m to b.
func AppendReady(b []byte, m *Ready) []byte {
	e := enc(b).uint(uint64(m.Version)).uint(uint64(m.Kind)).uint(uint64(len(m.Handlers)))
	for _, h := range m.Handlers {
		e = e.str(h)
	}
	return e
}

// DecodeReady decodes a Ready payload.
func DecodeReady(p []byte) (*Ready, error) {
	d := dec{b: p}
	m := &Ready{
		Version: d.u32("version"),
		Kind:    Kind(d.uint("kind")),
	}
	if n := d.count("handler count", 1); n > 0 {
		m.Handlers = make([]string, n)
		for i := range m.Handlers {
			m.Handlers[i] = d.str("handler")
		}
	}
	if d.err == nil && m.Kind != KindSDK && m.Kind != KindCommand {
		d.fail("kind")
	}
	return m, d.end("ready")
}

// AppendTask appends the encoding of one task to b. A Batch payload is a
// uvarint count followed by that many tasks.
func AppendTask(b []byte, t *Task) []byte {
	return enc(b).uint(t.ID).str(t.Func).bytes(t.Input).uint(t.MemoryLimit).int(int64(t.Timeout))
}

// AppendBatch appends a whole Batch payload to b.
func AppendBatch(b []byte, tasks []Task) []byte {
	b = enc(b).uint(uint64(len(tasks)))
	for i := range tasks {
		b = AppendTask(b, &tasks[i])
	}
	return b
}

// DecodeBatchInto decodes a Batch payload, which holds at least one task,
// into dst's storage when it has room. It copies nothing: each task's Input
// is a slice of p, valid as long as p is, and tasks that name the same
// function as the task before share its string. A worker decodes every
// batch into one slice this way and runs it before it reads the next frame.
func DecodeBatchInto(dst []Task, p []byte) ([]Task, error) {
	d := dec{b: p}
	n := d.count("task count", 5) // a task takes at least 5 bytes
	if d.err == nil && n == 0 {
		d.fail("task count (zero)")
	}
	var tasks []Task
	if d.err == nil {
		if cap(dst) >= int(n) {
			tasks = dst[:n]
			clear(tasks)
		} else {
			tasks = make([]Task, n)
		}
		for i := range tasks {
			t := &tasks[i]
			t.ID = d.uint("task id")
			if i > 0 {
				t.Func = d.strLike(tasks[i-1].Func, "func")
			} else {
				t.Func = d.str("func")
			}
			t.Input = d.view("input")
			t.MemoryLimit = d.uint("memory limit")
			t.Timeout = time.Duration(d.int("timeout"))
		}
	}
	if err := d.end("batch"); err != nil {
		return nil, err
	}
	return tasks, nil
}

// A Results payload is a uvarint count followed by that many results. The
// numbers of a result that follow from the one before are sent as their
// distance from it, a signed varint: its ID from the last ID (the tasks of
// a batch run in order, so 1), its Start from the last End (a worker
// starts the next task of a batch when it ends the last, so 0) and its
// PeakMemory from the last one (an instance's memory seldom grows, so 0);
// the first result's are from zero. End is sent as its distance from
// Start. A result then takes a byte per number but its duration, and is
// read mostly on the decoder's one-byte path. The distances wrap around,
// so that any values survive the trip.
type resultDeltas struct {
	id, end, peak uint64
}

// appendResult appends the encoding of r to b, relative to p, which it
// moves on to r.
func (p *resultDeltas) appendResult(b []byte, r *Result) []byte {
	b = enc(b).int(int64(r.ID - p.id)).uint(uint64(r.Status)).bytes(r.Output).str(r.Error).
		int(int64(uint64(r.Start) - p.end)).int(r.End - r.Start).int(int64(r.PeakMemory - p.peak)).bytes(r.Log)
	p.id, p.end, p.peak = r.ID, uint64(r.End), r.PeakMemory
	return b
}

// AppendResults appends a whole Results payload to b.
func AppendResults(b []byte, rs []Result) []byte {
	b = enc(b).uint(uint64(len(rs)))
	var p resultDeltas
	for i := range rs {
		b = p.appendResult(b, &rs[i])
	}
	return b
}

// smallOutput is the largest output DecodeResults packs into a shared
// chunk; larger ones get their own allocation. outputChunk is the chunk
// size: an output kept alone keeps at most this much memory alive.
const (
	smallOutput = 1 << 10
	outputChunk = 32 << 10
)

// outputs copies outputs out of a payload, packing small ones into shared
// chunks: one allocation per chunk instead of one per output.
type outputs struct{ chunk []byte }

// copy returns a copy of b. rest is how many bytes of the payload follow
// b: a chunk is no larger than what the rest of the message can fill, so
// that a message of one short result (an Apply) does not allocate a whole
// chunk, whose garbage made a loop of Applies collect often.
func (o *outputs) copy(b []byte, rest int) []byte {
	if len(b) == 0 {
		return nil
	}
	if len(b) > smallOutput {
		return bytes.Clone(b)
	}
	if cap(o.chunk)-len(o.chunk) < len(b) {
		o.chunk = make([]byte, 0, min(outputChunk, len(b)+rest))
	}
	start := len(o.chunk)
	o.chunk = append(o.chunk, b...)
	return o.chunk[start:len(o.chunk):len(o.chunk)] // capped: an append by the caller cannot reach a neighbour
}

// DecodeResults decodes a Results payload. The outputs and logs are copies
// that do not alias p; small ones share larger allocations.
func DecodeResults(p []byte) ([]Result, error) { return DecodeResultsInto(nil, p) }

// DecodeResultsInto is DecodeResults decoding into rs's array when it is
// large enough, so that a reader of many messages can reuse one.
func DecodeResultsInto(rs []Result, p []byte) ([]Result, error) {
	d := dec{b: p}
	n := d.count("result count", 8)
	if d.err == nil && n == 0 {
		d.fail("result count (zero)")
	}
	var out outputs
	if d.err == nil {
		if cap(rs) >= n {
			rs = rs[:n]
			clear(rs)
		} else {
			rs = make([]Result, n)
		}
		var p resultDeltas // see appendResult
		for i := range rs {
			r := &rs[i]
			r.ID = p.id + uint64(d.int("result id"))
			r.Status = Status(d.uint("status"))
			if d.err == nil && !r.Status.Valid() {
				d.fail("status")
			}
			r.Output = out.copy(d.view("output"), len(d.b))
			r.Error = d.str("error")
			r.Start = int64(p.end + uint64(d.int("start")))
			r.End = r.Start + d.int("end")
			r.PeakMemory = p.peak + uint64(d.int("peak memory"))
			r.Log = out.copy(d.view("log"), len(d.b))
			p.id, p.end, p.peak = r.ID, uint64(r.End), r.PeakMemory
		}
	}
	if err := d.end("results"); err != nil {
		return nil, err
	}
	return rs, nil
}

// AppendStarted appends a Started payload: the task's ID.
func AppendStarted(b []byte, id uint64) []byte { return enc(b).uint(id) }

// DecodeStarted decodes a Started payload.
func DecodeStarted(p []byte) (uint64, error) {
	d := dec{b: p}
	id := d.uint("task id")
	return id, d.end("started")
}

// AppendFatal appends the encoding of m to b.
func AppendFatal(b []byte, m *Fatal) []byte {
	return enc(b).uint(uint64(m.Code)).str(m.Message)
}

// DecodeFatal decodes a Fatal payload.
func DecodeFatal(p []byte) (*Fatal, error) {
	d := dec{b: p}
	m := &Fatal{Code: FatalCode(d.u32("code")), Message: d.str("message")}
	return m, d.end("fatal")
}

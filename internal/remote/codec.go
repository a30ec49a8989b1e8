package remote

import (
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"
)

// Messages are binary: a version byte, a type byte, then fields as varints
// and length-prefixed bytes. Decoders check every length against what is
// left, so a damaged or hostile message is an error, never a panic or a
// large allocation.

// Version is the message format's version; a message of another version is
// refused.
const Version = 3

// The message types.
const (
	typeChunk byte = iota + 1
	typeClaim
	typeReady
	typeResults
	typeHeartbeat
	typeRelease
	typeStop
	typeSpec
)

// ErrMalformed is a message that cannot be decoded.
var ErrMalformed = errors.New("remote: malformed message")

type enc []byte

func (e enc) uint(v uint64) enc { return binary.AppendUvarint(e, v) }
func (e enc) int(v int64) enc   { return binary.AppendVarint(e, v) }
func (e enc) bool(v bool) enc {
	if v {
		return append(e, 1)
	}
	return append(e, 0)
}
func (e enc) bytes(b []byte) enc { return append(e.uint(uint64(len(b))), b...) }
func (e enc) str(s string) enc   { return append(e.uint(uint64(len(s))), s...) }
func (e enc) ids(v []uint64) enc {
	e = e.uint(uint64(len(v)))
	for _, x := range v {
		e = e.uint(x)
	}
	return e
}

type dec struct {
	b   []byte
	err error
	// shared: bytes fields alias b instead of being copied.
	shared bool
}

func (d *dec) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", ErrMalformed, what)
	}
}

// uint reads a varint. Most are one byte (a step, a length, a flag
// set): that case is inlined. After an error, it may return anything;
// the decoder's error stays, and decoders stop at it.
func (d *dec) uint(what string) uint64 {
	if b := d.b; len(b) != 0 && b[0] < 0x80 {
		d.b = b[1:]
		return uint64(b[0])
	}
	return uintSlow(d, what)
}

func uintSlow(d *dec, what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// int reads a signed varint (binary.AppendVarint's zigzag encoding).
func (d *dec) int(what string) int64 {
	u := d.uint(what)
	return int64(u>>1) ^ -int64(u&1)
}

func (d *dec) bool(what string) bool {
	if d.err != nil {
		return false
	}
	if len(d.b) == 0 || d.b[0] > 1 {
		d.fail(what)
		return false
	}
	v := d.b[0] == 1
	d.b = d.b[1:]
	return v
}

// bytes returns a copy, since messages' buffers belong to the transport,
// unless the decoder shares the message's buffer.
func (d *dec) bytes(what string) []byte {
	n := d.uint(what)
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(what)
		return nil
	}
	if n == 0 {
		d.b = d.b[0:]
		return nil
	}
	var v []byte
	if d.shared {
		v = d.b[:n:n]
	} else {
		v = append([]byte(nil), d.b[:n]...)
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) str(what string) string {
	n := d.uint(what)
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail(what)
		return ""
	}
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}

// count reads a length whose items take at least min bytes each.
func (d *dec) count(what string, min int) int {
	n := d.uint(what)
	if d.err != nil {
		return 0
	}
	if n > uint64(len(d.b)/min) {
		d.fail(what)
		return 0
	}
	return int(n)
}

func (d *dec) ids(what string) []uint64 {
	n := d.count(what, 1)
	if n == 0 {
		return nil
	}
	v := make([]uint64, n)
	for i := range v {
		v[i] = d.uint(what)
	}
	return v
}

func (d *dec) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	return d.err
}

func header(t byte) enc { return enc{Version, t} }

func open(b []byte, t byte) (*dec, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: too short", ErrMalformed)
	}
	if b[0] != Version {
		return nil, fmt.Errorf("%w: version %d, want %d: run the same safepool release on coordinators and agents", ErrMalformed, b[0], Version)
	}
	if b[1] != t {
		return nil, fmt.Errorf("%w: type %d, want %d", ErrMalformed, b[1], t)
	}
	return &dec{b: b[2:]}, nil
}

func (e enc) agent(a *Agent) enc {
	return e.str(a.Name).str(a.Host).str(a.Instance).uint(uint64(a.Workers))
}

func (d *dec) agent(a *Agent) {
	a.Name = d.str("agent name")
	a.Host = d.str("agent host")
	a.Instance = d.str("agent instance")
	a.Workers = int(d.uint("agent workers"))
}

func (e enc) spec(s *Spec) enc {
	e = e.str(s.Pool).str(s.Module).int(s.ModuleSize).str(s.Name).str(s.Engine).
		int(s.MemoryLimit).int(int64(s.Timeout)).int(int64(s.StartTimeout)).int(s.OutputLimit).
		int(s.LogLimit).bool(s.FreshInstance).uint(uint64(s.BatchSize)).int(s.MinAvailable).int(int64(s.GateTimeout)).bool(s.Events)
	e = e.strs(s.Env).strs(s.Args).uint(uint64(len(s.Dirs)))
	for _, d := range s.Dirs {
		e = e.str(d.HostPath).str(d.GuestPath).bool(d.Writable)
	}
	return e
}

func (e enc) strs(ss []string) enc {
	e = e.uint(uint64(len(ss)))
	for _, s := range ss {
		e = e.str(s)
	}
	return e
}

func (d *dec) strs(what string) []string {
	n := d.count(what, 1)
	if n == 0 {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = d.str(what)
	}
	return ss
}

func (d *dec) spec(s *Spec) {
	s.Pool = d.str("pool")
	s.Module = d.str("module")
	s.ModuleSize = d.int("module size")
	s.Name = d.str("name")
	s.Engine = d.str("engine")
	s.MemoryLimit = d.int("memory limit")
	s.Timeout = time.Duration(d.int("timeout"))
	s.StartTimeout = time.Duration(d.int("start timeout"))
	s.OutputLimit = d.int("output limit")
	s.LogLimit = d.int("log limit")
	s.FreshInstance = d.bool("fresh instance")
	s.BatchSize = int(d.uint("batch size"))
	s.MinAvailable = d.int("min available")
	s.GateTimeout = time.Duration(d.int("gate timeout"))
	s.Events = d.bool("events")
	s.Env = d.strs("env")
	s.Args = d.strs("args")
	if n := d.count("dirs", 3); n > 0 {
		s.Dirs = make([]Dir, n)
		for i := range s.Dirs {
			s.Dirs[i] = Dir{HostPath: d.str("dir host path"), GuestPath: d.str("dir guest path"), Writable: d.bool("dir writable")}
		}
	}
}

// TaskOverhead bounds the bytes a task adds to a chunk besides its input
// and function name.
const TaskOverhead = 48

// ChunkOverhead bounds the bytes of a chunk besides its tasks.
const ChunkOverhead = 512

// resultOverhead bounds the bytes of a result's fields besides its byte
// and string fields.
const resultOverhead = 96

// MarshalChunk encodes c.
func MarshalChunk(c *Chunk) []byte {
	// The usual task takes its input and a few bytes (fields, ID step,
	// input length); a rarer field grows the buffer.
	size := 0
	for i := range c.Tasks {
		t := &c.Tasks[i]
		size += len(t.Input) + len(t.InputRef)
	}
	var fn string
	if len(c.Tasks) > 0 {
		fn = c.Tasks[0].Func
	}
	var w ChunkWriter
	w.Begin(make([]byte, 0, ChunkOverhead+4*len(c.Tasks)+size), c.ID, &c.Spec, len(c.Tasks), fn)
	for i := range c.Tasks {
		w.Add(&c.Tasks[i])
	}
	return w.Bytes()
}

// ChunkWriter encodes a chunk task by task, so that a sender needs no
// Task per attempt: Begin, then Add once for each of the n tasks Begin
// announced, then Bytes. The zero value is ready for Begin.
type ChunkWriter struct {
	e    enc
	fn   string
	prev uint64
	left int
}

// Begin starts the encoding of a chunk of n tasks, most of them (those
// whose Func is fn) of the function fn, appended to dst.
func (w *ChunkWriter) Begin(dst []byte, id uint64, s *Spec, n int, fn string) {
	// The tasks of a chunk are one map's, numbered in a row: the
	// function goes once, each ID as the step from the one before, and
	// the fields a task rarely sets only when it does (taskFlags).
	w.e = append(enc(dst), Version, typeChunk).uint(id).spec(s).uint(uint64(n)).str(fn)
	w.fn, w.prev, w.left = fn, 0, n
}

// Add appends t. It panics past the n tasks Begin announced.
func (w *ChunkWriter) Add(t *Task) {
	if w.left--; w.left < 0 {
		panic("remote: ChunkWriter.Add: more tasks than Begin announced")
	}
	var f uint64
	if len(t.Input) > 0 {
		f |= taskInput
	}
	if t.Func != w.fn {
		f |= taskFunc
	}
	if t.InputRef != "" {
		f |= taskInputRef
	}
	if t.MemoryLimit != 0 {
		f |= taskMemoryLimit
	}
	if t.Gate {
		f |= taskGate
	}
	e := w.e.uint(f).int(int64(t.ID - w.prev))
	w.prev = t.ID
	if f&taskInput != 0 {
		e = e.bytes(t.Input)
	}
	if f&taskFunc != 0 {
		e = e.str(t.Func)
	}
	if f&taskInputRef != 0 {
		e = e.str(t.InputRef)
	}
	if f&taskMemoryLimit != 0 {
		e = e.int(t.MemoryLimit)
	}
	w.e = e
}

// Bytes returns the chunk's encoding. It panics when fewer tasks were
// added than Begin announced.
func (w *ChunkWriter) Bytes() []byte {
	if w.left != 0 {
		panic("remote: ChunkWriter.Bytes: fewer tasks than Begin announced")
	}
	return w.e
}

// The fields a task of a chunk sets besides its ID.
const (
	taskInput = 1 << iota
	taskFunc  // another function than the chunk's first task
	taskInputRef
	taskMemoryLimit
	taskGate
	taskAll = 1<<iota - 1
)

// UnmarshalChunk decodes a chunk, with its Tasks; their inputs are copies.
func UnmarshalChunk(b []byte) (*Chunk, error) {
	c, err := unmarshalChunk(b, false)
	if err != nil {
		return nil, err
	}
	c.Tasks = make([]Task, 0, c.n)
	for _, t := range c.All() {
		c.Tasks = append(c.Tasks, *t)
	}
	c.n, c.fn, c.raw = 0, "", nil
	return c, nil
}

// UnmarshalChunkShared decodes a chunk whose tasks stay encoded in b, which
// the chunk then owns: they are checked whole, and read one by one with
// All, their inputs aliasing b. For a transport that hands over a buffer of
// the message's own; the receiver makes its own record of each task, so no
// Task per attempt is ever allocated.
func UnmarshalChunkShared(b []byte) (*Chunk, error) { return unmarshalChunk(b, true) }

func unmarshalChunk(b []byte, shared bool) (*Chunk, error) {
	d, err := open(b, typeChunk)
	if err != nil {
		return nil, err
	}
	d.shared = shared
	c := &Chunk{ID: d.uint("chunk id")}
	d.spec(&c.Spec)
	c.n = d.count("tasks", 2)
	c.fn = d.str("func")
	if d.err != nil {
		return nil, d.err
	}
	c.raw, c.shared = d.b, shared
	// Every task is checked now, so that All cannot fail; without a
	// copy of any input.
	d.shared = true
	var t Task
	var prev uint64
	for range c.n {
		prev = d.task(&t, c.fn, prev)
		if d.err != nil {
			return nil, d.err
		}
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return c, nil
}

// task decodes one task of a chunk whose function is fn, after the task
// whose ID is prev, into t, and returns its ID.
func (d *dec) task(t *Task, fn string, prev uint64) uint64 {
	*t = Task{Func: fn}
	f := d.uint("task fields")
	if f&^taskAll != 0 {
		d.fail("task fields")
	}
	t.ID = prev + uint64(d.int("task id"))
	if f&taskInput != 0 {
		t.Input = d.bytes("input")
	}
	if f&taskFunc != 0 {
		t.Func = d.str("func")
	}
	if f&taskInputRef != 0 {
		t.InputRef = d.str("input ref")
	}
	if f&taskMemoryLimit != 0 {
		t.MemoryLimit = d.int("task memory limit")
	}
	t.Gate = f&taskGate != 0
	return t.ID
}

// Len is the number of the chunk's tasks.
func (c *Chunk) Len() int {
	if c.raw != nil {
		return c.n
	}
	return len(c.Tasks)
}

// All yields the chunk's tasks in order, with their place. Of a chunk
// from UnmarshalChunkShared it decodes them one by one into one Task,
// which each step overwrites: keep a task's fields, not the pointer.
func (c *Chunk) All() iter.Seq2[int, *Task] {
	return func(yield func(int, *Task) bool) {
		if c.raw == nil {
			for i := range c.Tasks {
				if !yield(i, &c.Tasks[i]) {
					return
				}
			}
			return
		}
		d := dec{b: c.raw, shared: c.shared}
		var t Task
		var prev uint64
		for i := range c.n {
			prev = d.task(&t, c.fn, prev)
			if !yield(i, &t) {
				return
			}
		}
	}
}

// MarshalSpec encodes s (a Prepare).
func MarshalSpec(s *Spec) []byte { return header(typeSpec).spec(s) }

// UnmarshalSpec decodes a Prepare.
func UnmarshalSpec(b []byte) (*Spec, error) {
	d, err := open(b, typeSpec)
	if err != nil {
		return nil, err
	}
	s := &Spec{}
	d.spec(s)
	return s, d.end()
}

// MarshalClaim encodes c.
func MarshalClaim(c *Claim) []byte {
	return header(typeClaim).str(c.Pool).uint(c.Chunk).agent(&c.Agent)
}

// UnmarshalClaim decodes a claim.
func UnmarshalClaim(b []byte) (*Claim, error) {
	d, err := open(b, typeClaim)
	if err != nil {
		return nil, err
	}
	c := &Claim{Pool: d.str("pool"), Chunk: d.uint("chunk")}
	d.agent(&c.Agent)
	return c, d.end()
}

// MarshalReady encodes r.
func MarshalReady(r *Ready) []byte {
	e := header(typeReady).str(r.Pool).agent(&r.Agent).uint(uint64(r.Kind)).uint(uint64(len(r.Handlers)))
	for _, h := range r.Handlers {
		e = e.str(h)
	}
	return e.str(r.Err).bool(r.ModuleErr)
}

// UnmarshalReady decodes a ready.
func UnmarshalReady(b []byte) (*Ready, error) {
	d, err := open(b, typeReady)
	if err != nil {
		return nil, err
	}
	r := &Ready{Pool: d.str("pool")}
	d.agent(&r.Agent)
	r.Kind = uint8(d.uint("kind"))
	n := d.count("handlers", 1)
	for range n {
		r.Handlers = append(r.Handlers, d.str("handler"))
	}
	r.Err = d.str("error")
	r.ModuleErr = d.bool("module error")
	return r, d.end()
}

// MarshalResults encodes r.
func MarshalResults(r *Results) []byte { return AppendResults(nil, r) }

// AppendResults appends the encoding of r to dst, so that a sender may
// reuse its buffer.
func AppendResults(dst []byte, r *Results) []byte {
	size := 0
	for i := range r.Results {
		size += ResultSize(&r.Results[i])
	}
	var w ResultsWriter
	w.body = make([]byte, 0, size)
	for i := range r.Results {
		w.Add(&r.Results[i])
	}
	return w.AppendMessage(dst, r.Pool, &r.Agent, r.Beat, r.Running)
}

// ResultSize bounds the bytes of x's encoding in a Results message.
func ResultSize(x *Result) int {
	return resultOverhead + len(x.Output) + len(x.OutputRef) + len(x.Error) + len(x.Log) + len(x.Signal) + len(x.GateFailed)
}

// ResultsWriter encodes an agent's results one by one as they come, so
// that no Result is kept per attempt until its message is sent: Add each,
// then AppendMessage makes the message of those added. The zero value is
// empty and ready.
type ResultsWriter struct {
	body enc
	n    int
	// The fields of the result before that the next is encoded from.
	prevID    uint64
	prevStart int64
	prevPID   int
}

// Len is the number of results added.
func (w *ResultsWriter) Len() int { return w.n }

// Size is the bytes of the results added, without the message's header.
func (w *ResultsWriter) Size() int { return len(w.body) }

// Reset forgets the results added, and keeps their room for the next.
func (w *ResultsWriter) Reset() { *w = ResultsWriter{body: w.body[:0]} }

// Add encodes x after the results added. x is not kept.
func (w *ResultsWriter) Add(x *Result) {
	// A worker's batch holds attempts numbered in a row, run one after
	// the other by one process: the ID and the start go as steps from the
	// result before, the end from the start, the PID only when it
	// changes, and the fields an answer rarely sets only when it does
	// (resultFlags).
	f := uint64(x.Status) << resultStatusShift
	if len(x.Output) > 0 {
		f |= resultOutput
	}
	if x.WorkerPID != w.prevPID {
		f |= resultPID
	}
	if x.OutputRef != "" || x.Error != "" || len(x.Log) > 0 || x.Died || x.Signal != "" || x.ExitCode != 0 || x.Hung || x.GateFailed != "" {
		f |= resultRare
	}
	if x.PeakMemory != 0 || x.MemoryLimit != 0 {
		f |= resultMemory
	}
	e := w.body.uint(f).int(int64(x.ID - w.prevID)).int(x.Start - w.prevStart).int(x.End - x.Start)
	if f&resultOutput != 0 {
		e = e.bytes(x.Output)
	}
	if f&resultPID != 0 {
		e = e.int(int64(x.WorkerPID))
	}
	if f&resultMemory != 0 {
		e = e.int(x.PeakMemory).int(x.MemoryLimit)
	}
	if f&resultRare != 0 {
		e = e.str(x.OutputRef).str(x.Error).bytes(x.Log).bool(x.Died).str(x.Signal).int(int64(x.ExitCode)).bool(x.Hung).str(x.GateFailed)
	}
	w.body = e
	w.n++
	w.prevID, w.prevStart, w.prevPID = x.ID, x.Start, x.WorkerPID
}

// AppendMessage appends to dst the Results message of pool from agent a
// that carries the results added, with Beat and Running as given.
func (w *ResultsWriter) AppendMessage(dst []byte, pool string, a *Agent, beat bool, running []uint64) []byte {
	size := 64 + len(pool) + len(a.Name) + len(a.Host) + len(a.Instance) + len(w.body) + 10*len(running)
	e := append(slices.Grow(enc(dst), size), Version, typeResults).str(pool).agent(a).uint(uint64(w.n))
	e = append(e, w.body...).bool(beat)
	if beat {
		e = e.ids(running)
	}
	return e
}

// The parts of a result besides its ID and times, in its first number;
// the status is that number shifted right by resultStatusShift.
const (
	resultOutput      = 1 << iota
	resultPID         // the worker's PID differs from the result before's
	resultMemory      // peak memory and memory limit
	resultRare        // output ref, error, log, death, gate
	resultStatusShift = iota
)

// UnmarshalResults decodes results. Their outputs and logs are copies.
func UnmarshalResults(b []byte) (*Results, error) { return unmarshalResults(b, false) }

// UnmarshalResultsShared decodes results whose outputs and logs alias b:
// for a transport that hands over a buffer of the message's own, which b
// then becomes; one allocation instead of two per result.
func UnmarshalResultsShared(b []byte) (*Results, error) { return unmarshalResults(b, true) }

func unmarshalResults(b []byte, shared bool) (*Results, error) {
	r := &Results{}
	if err := decodeResults(b, r, shared); err != nil {
		return nil, err
	}
	return r, nil
}

// DecodeResults decodes results into r, reusing the room of r.Results;
// their outputs and logs alias b, as with UnmarshalResultsShared. For a
// receiver that handles one message at a time and keeps none of r's
// Result values (only the fields' contents) past the next.
func DecodeResults(b []byte, r *Results) error { return decodeResults(b, r, true) }

func decodeResults(b []byte, r *Results, shared bool) error {
	d, err := open(b, typeResults)
	if err != nil {
		return err
	}
	d.shared = shared
	r.Pool = d.str("pool")
	d.agent(&r.Agent)
	n := d.count("results", 4)
	if cap(r.Results) >= n {
		r.Results = r.Results[:n]
		clear(r.Results)
	} else {
		r.Results = make([]Result, n)
	}
	var prev *Result
	for i := range r.Results {
		x := &r.Results[i]
		if prev != nil {
			x.ID, x.Start, x.WorkerPID = prev.ID, prev.Start, prev.WorkerPID
		}
		f := d.uint("result fields")
		status := f >> resultStatusShift
		if status > 255 {
			d.fail("status")
		}
		x.Status = uint8(status)
		x.ID += uint64(d.int("id"))
		x.Start += d.int("start")
		x.End = x.Start + d.int("end")
		if f&resultOutput != 0 {
			x.Output = d.bytes("output")
		}
		if f&resultPID != 0 {
			x.WorkerPID = int(d.int("pid"))
		}
		if f&resultMemory != 0 {
			x.PeakMemory = d.int("peak memory")
			x.MemoryLimit = d.int("memory limit")
		}
		if f&resultRare != 0 {
			x.OutputRef = d.str("output ref")
			x.Error = d.str("error")
			x.Log = d.bytes("log")
			x.Died = d.bool("died")
			x.Signal = d.str("signal")
			x.ExitCode = int(d.int("exit code"))
			x.Hung = d.bool("hung")
			x.GateFailed = d.str("gate")
		}
		if d.err != nil {
			break
		}
		prev = x
	}
	r.Beat = d.bool("beat")
	r.Running = r.Running[:0]
	if r.Beat {
		n := d.count("running", 1)
		for range n {
			r.Running = append(r.Running, d.uint("running"))
		}
	}
	return d.end()
}

// MarshalHeartbeat encodes h.
func MarshalHeartbeat(h *Heartbeat) []byte {
	e := header(typeHeartbeat).agent(&h.Agent).uint(h.Seq).uint(uint64(len(h.Holding)))
	for i := range h.Holding {
		x := &h.Holding[i]
		e = e.str(x.Pool).ids(x.Chunks).ids(x.Running)
	}
	return e
}

// UnmarshalHeartbeat decodes a heartbeat.
func UnmarshalHeartbeat(b []byte) (*Heartbeat, error) {
	d, err := open(b, typeHeartbeat)
	if err != nil {
		return nil, err
	}
	h := &Heartbeat{}
	d.agent(&h.Agent)
	h.Seq = d.uint("seq")
	n := d.count("holdings", 3)
	h.Holding = make([]Holding, n)
	for i := range h.Holding {
		x := &h.Holding[i]
		x.Pool = d.str("pool")
		x.Chunks = d.ids("chunks")
		x.Running = d.ids("running")
	}
	return h, d.end()
}

// MarshalRelease encodes r.
func MarshalRelease(r *Release) []byte {
	return header(typeRelease).str(r.Pool).agent(&r.Agent).ids(r.IDs).str(r.Why)
}

// UnmarshalRelease decodes a release.
func UnmarshalRelease(b []byte) (*Release, error) {
	d, err := open(b, typeRelease)
	if err != nil {
		return nil, err
	}
	r := &Release{Pool: d.str("pool")}
	d.agent(&r.Agent)
	r.IDs = d.ids("ids")
	r.Why = d.str("why")
	return r, d.end()
}

// MarshalStop encodes s.
func MarshalStop(s *Stop) []byte { return header(typeStop).str(s.Pool).bool(s.All).ids(s.Chunks) }

// UnmarshalStop decodes a stop.
func UnmarshalStop(b []byte) (*Stop, error) {
	d, err := open(b, typeStop)
	if err != nil {
		return nil, err
	}
	s := &Stop{Pool: d.str("pool"), All: d.bool("all")}
	s.Chunks = d.ids("chunks")
	return s, d.end()
}

package remote

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Spec is what an agent needs to run a pool's tasks: the module, by the
// SHA-256 of its bytes, and the pool's limits. It travels in every chunk, so
// that an agent that joins late can start at its first chunk.
type Spec struct {
	Pool          string // the pool's ID, unique in the cluster
	Module        string // hex SHA-256 of the module's bytes: its key in the object store
	ModuleSize    int64
	Name          string // the module's name, for messages
	Engine        string
	MemoryLimit   int64
	Timeout       time.Duration
	StartTimeout  time.Duration
	OutputLimit   int64
	LogLimit      int64
	FreshInstance bool
	BatchSize     int
	// MinAvailable and GateTimeout are the retry's memory gate, checked on
	// the agent for a task whose Gate is set.
	MinAvailable int64
	GateTimeout  time.Duration
	// Events asks agents to say when each attempt starts: a Result whose
	// Status is 0, with the worker's PID.
	Events bool
	// Grants (pool.Config's Env, Args and Dirs): the environment as sorted
	// "KEY=VALUE" entries, the arguments after the program name, and the
	// directories, which are paths on the agent's machine.
	Env  []string
	Args []string
	Dirs []Dir
}

// Dir is a directory of the agent's machine granted to the guest.
type Dir struct {
	HostPath  string
	GuestPath string
	Writable  bool
}

// Task is one attempt of one task.
type Task struct {
	ID    uint64 // the attempt's ID, unique in its pool
	Func  string
	Input []byte
	// InputRef names an object holding an input too large for a message;
	// Input is then empty.
	InputRef    string
	MemoryLimit int64 // 0: the spec's
	// Gate asks the agent to wait at the memory gate before running it:
	// its last attempt's worker was killed by a signal.
	Gate bool
}

// Chunk is a batch of attempts, one message on the work queue.
type Chunk struct {
	ID   uint64 // unique in its pool
	Spec Spec
	// Tasks are the attempts of a chunk made to be encoded
	// (MarshalChunk) or decoded by UnmarshalChunk. A chunk decoded by
	// UnmarshalChunkShared keeps them encoded and leaves Tasks nil: Len
	// and All read them either way.
	Tasks []Task

	// Of a chunk from UnmarshalChunkShared: n tasks, encoded in raw, of
	// the function fn; their bytes alias raw when shared.
	n      int
	fn     string
	raw    []byte
	shared bool
}

// Agent names an agent process.
type Agent struct {
	Name     string // given by its operator, or host-pid
	Host     string
	Instance string // random, new at every start of the process
	Workers  int
}

// String is "agent NAME on host HOST".
func (a Agent) String() string { return fmt.Sprintf("agent %s on host %s", a.Name, a.Host) }

// Claim asks a pool for a chunk an agent fetched. Only a granted claim may
// run: the pool grants each chunk once.
type Claim struct {
	Pool  string
	Chunk uint64
	Agent Agent
}

// Ready answers a Prepare: the agent's workers started (Kind and Handlers
// from their handshake), or could not (Err, and ModuleErr when the module
// itself is at fault, not the agent's machine).
type Ready struct {
	Pool      string
	Agent     Agent
	Kind      uint8
	Handlers  []string
	Err       string
	ModuleErr bool
}

// Result is how one attempt ended on an agent; or, with Status 0, that it
// started (only when the spec asks for Events), on the worker WorkerPID.
type Result struct {
	ID     uint64
	Status uint8 // pool.Status
	Output []byte
	// OutputRef names an object holding an output too large for a
	// message; Output is then empty.
	OutputRef   string
	Error       string
	Log         []byte
	Start, End  int64 // Unix nanoseconds, agent's clock
	WorkerPID   int
	PeakMemory  int64
	MemoryLimit int64
	// Died is set when the worker died running the attempt: Signal (or
	// "") and ExitCode say how, Hung when it stopped answering.
	Died     bool
	Signal   string
	ExitCode int
	Hung     bool
	// GateFailed says why the memory gate gave up on the attempt, which
	// then did not run.
	GateFailed string
}

// IsStart reports whether x says only that its attempt started: Status 0,
// and no word from the memory gate, which ends an attempt.
func (x *Result) IsStart() bool { return x.Status == 0 && x.GateFailed == "" }

// Results carries results of one pool from one agent.
type Results struct {
	Pool    string
	Agent   Agent
	Results []Result
	// Running, when Beat is set, lists the attempt each of the agent's
	// workers runs as the results leave, as a heartbeat's
	// Holding.Running does: the pool takes it in place of what it knew,
	// so that it knows to the task what the agent runs after every
	// batch without a heartbeat message after each.
	Beat    bool
	Running []uint64
}

// Holding is what an agent holds of one pool: the chunks it claimed and
// has not fully answered, and the attempt each worker is running.
type Holding struct {
	Pool    string
	Chunks  []uint64
	Running []uint64
}

// Heartbeat is an agent's periodic sign of life.
type Heartbeat struct {
	Agent   Agent
	Seq     uint64
	Holding []Holding
}

// Release gives attempts back to their pool without charge: the agent
// cannot run them (its workers cannot start, it is shutting down).
type Release struct {
	Pool  string
	Agent Agent
	IDs   []uint64
	Why   string
}

// Stop asks agents to stop attempts of a pool: those of Chunks (a chunk
// holds tasks of one map), or every attempt of the pool when All (the pool
// closed). A stopped attempt's result is not wanted.
type Stop struct {
	Pool   string
	All    bool
	Chunks []uint64
}

// Coordinator is a pool's side of a transport.
type Coordinator interface {
	// Pool is the pool's ID in the cluster.
	Pool() string
	// PutObject stores data under key, for agents to fetch; the module's
	// key is its hex SHA-256.
	PutObject(ctx context.Context, key string, data []byte) error
	// GetObject fetches an object an agent stored (a large output).
	GetObject(ctx context.Context, key string) ([]byte, error)
	// DeleteObject removes an object that is no longer needed.
	DeleteObject(key string)
	// Prepare asks every agent to start workers for spec; each answers
	// with Handler.Ready.
	Prepare(spec *Spec) error
	// Send puts a chunk on the work queue: data is its encoding
	// (MarshalChunk, or a ChunkWriter's Bytes), id its ID. The caller
	// does not change data afterwards: the transport may keep it.
	Send(ctx context.Context, id uint64, data []byte) error
	// Stop asks the agents to stop attempts.
	Stop(s *Stop) error
	// MaxPayload is the largest message the transport carries.
	MaxPayload() int
	// Close tells the agents the pool is gone and disconnects.
	Close() error
}

// InProcessAgents is implemented by a Coordinator whose transport also
// runs an agent in the pool's own process (the "embedded" target). Such an
// agent cannot die without its pool, so the pool does not presume it lost
// from missed heartbeats, which a loaded machine can delay; agents in
// other processes are watched as usual.
type InProcessAgents interface {
	// InProcessAgent reports whether the agent instance runs in this
	// process, beside the pool.
	InProcessAgent(instance string) bool
}

// Handler is how a transport reports to its pool. Messages from one agent
// arrive in the order it sent them. Methods may be called concurrently.
type Handler interface {
	Ready(r *Ready)
	// Claim answers whether the agent may run the chunk.
	Claim(c *Claim) bool
	Results(r *Results)
	Heartbeat(h *Heartbeat)
	Release(r *Release)
	// AgentLost says the transport saw the agent go (its connection
	// closed): why says how.
	AgentLost(instance, why string)
	// Reconnected says the connection to the cluster was lost and is back:
	// chunks published meanwhile may be gone, and are sent again.
	Reconnected()
}

// AgentTransport is an agent's side of a transport.
type AgentTransport interface {
	// Next waits for the next chunk on the work queue.
	Next(ctx context.Context) (*Chunk, error)
	// Claim asks the chunk's pool for it, and acknowledges the message
	// to the work queue either way: the pool's answer is the truth.
	Claim(ctx context.Context, c *Claim) (bool, error)
	// Object fetches an object; the module's bytes are checked against
	// their digest, and a damaged object is an error that says so.
	Object(ctx context.Context, key string) ([]byte, error)
	// PutObject stores a large output for its pool to fetch.
	PutObject(ctx context.Context, key string, data []byte) error
	SendReady(r *Ready) error
	// SendResults sends a Results message of pool, encoded
	// (ResultsWriter.AppendMessage or MarshalResults). The transport
	// does not keep msg past the call: the agent reuses its room.
	SendResults(pool string, msg []byte) error
	SendHeartbeat(h *Heartbeat) error
	SendRelease(r *Release) error
	// MaxPayload is the largest message the transport carries.
	MaxPayload() int
}

// AgentHandler is how a transport delivers control messages to an agent.
type AgentHandler interface {
	Prepare(s *Spec)
	Stop(s *Stop)
}

// OpenConfig is what a pool gives a transport to open.
type OpenConfig struct {
	// Target is Config.Cluster: "embedded", or server URLs.
	Target string
	// Options are Config.ClusterOptions, the transport's own type.
	Options any
	// Workers and Spares size an embedded agent; CacheDir is its
	// compilation cache and WorkerCommand how it starts workers.
	Workers, Spares int
	CacheDir        string
	WorkerCommand   []string
}

// Opener opens a pool's side of a transport.
type Opener func(ctx context.Context, cfg OpenConfig, h Handler) (Coordinator, error)

// AgentConfig configures an agent.
type AgentConfig struct {
	Name string
	// Instance is the agent's Agent.Instance, set by a transport that
	// names its connection after it (so that pools can tell which agent
	// disconnected); empty: RunAgent makes one.
	Instance      string
	Workers       int
	Spares        int
	MaxMemory     int64 // largest memory cap a task may run with here; 0: any
	CacheDir      string
	WorkerCommand []string
	// Heartbeat is the interval of heartbeats. Default 200ms. Pools
	// presume an agent silent for 800ms dead: an interval longer than
	// the default leaves a loaded agent less room before it looks lost.
	Heartbeat time.Duration
	// Logf, when set, gets one line per notable event.
	Logf func(format string, args ...any)
	// Observer, when set, receives a pool.Event (package pool's type;
	// this package cannot name it) for each worker event of the agent's
	// local pools and an EventTaskEnd for each attempt they ran, with
	// the agent's name and host. It is called from the agent's
	// goroutines and must return quickly. It is how 'safepool serve
	// --metrics' counts an agent's work.
	Observer func(event any)
}

// RunAgent runs an agent over t until ctx is done, then releases what it
// holds and stops its workers. Package pool sets it.
var RunAgent func(ctx context.Context, cfg AgentConfig, t AgentTransport, subscribe func(AgentHandler) error) error

var (
	mu      sync.RWMutex
	openers = map[string]Opener{}
)

// Register makes a transport available for targets that start with one of
// prefixes: "embedded", "nats://", "tls://".
func Register(o Opener, prefixes ...string) {
	mu.Lock()
	defer mu.Unlock()
	for _, p := range prefixes {
		openers[p] = o
	}
}

// ErrNoTransport says no registered transport takes a target.
var ErrNoTransport = errors.New("remote: no cluster transport for this target")

// Open opens the transport registered for cfg.Target.
func Open(ctx context.Context, cfg OpenConfig, h Handler) (Coordinator, error) {
	mu.RLock()
	var o Opener
	best := ""
	for p, op := range openers {
		if strings.HasPrefix(cfg.Target, p) && len(p) > len(best) {
			o, best = op, p
		}
	}
	mu.RUnlock()
	if o == nil {
		return nil, fmt.Errorf("%w %q: import _ \"github.com/safepool/safepool/cluster\" to run on \"embedded\" or nats:// servers", ErrNoTransport, cfg.Target)
	}
	return o(ctx, cfg, h)
}

// Prefixes lists the registered target prefixes, sorted.
func Prefixes() []string {
	mu.RLock()
	defer mu.RUnlock()
	var out []string
	for p := range openers {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

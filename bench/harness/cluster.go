package harness

import (
	"context"
	"fmt"
	"time"

	_ "github.com/safepool/safepool/cluster" // the NATS transport of Config.Cluster
	"github.com/safepool/safepool/pool"
)

// ScenarioCluster measures the pool on a cluster beside the local pool.
const ScenarioCluster = "cluster"

// Cluster systems, as the report shows them.
const (
	ClusterLocal    = "local pool"
	ClusterEmbedded = "cluster \"embedded\""
	ClusterThree    = "cluster, 3 agents"
)

// ClusterResults is what the cluster scenario measured.
type ClusterResults struct {
	Throughput []Throughput
	Latency    []Latency
	// Recovery is the time from a SIGKILL to the retried task's start.
	Recovery []ClusterRecovery
	// Stream is the coordinator's peak RSS while Imap streams.
	Stream *ClusterStream
	Notes  []string
}

// ClusterRecovery is one kind of kill and how long retries took to start.
type ClusterRecovery struct {
	Kill    string // what was killed, and how the loss was noticed
	Samples []time.Duration
	P50     time.Duration
	Max     time.Duration
}

// ClusterStream is the coordinator's memory while Imap streams.
type ClusterStream struct {
	System  string
	Items   int
	Elapsed time.Duration
	// StartKiB and PeakKiB are the coordinator process's VmRSS after its
	// start and its VmHWM at the end.
	StartKiB, PeakKiB int64
	Correct           bool
}

// clusterPool starts a pool of opts.Workers workers on guest, local when
// target is "" and on the cluster target otherwise.
func (b *bench) clusterPool(guest, target string) (*pool.Pool, error) {
	return b.newPool(guest, func(c *pool.Config) { c.Cluster = target })
}

// clusterThroughput runs square over ThroughputN inputs on the local pool
// and on "embedded", taking turns, and keeps each system's best run.
func (b *bench) clusterThroughput(ctx context.Context, cr *ClusterResults) error {
	n := b.opts.ThroughputN
	inputs := decimals(n)
	for _, g := range b.opts.Guests {
		systems := []struct{ name, target string }{{ClusterLocal, ""}, {ClusterEmbedded, "embedded"}}
		rows := make([]Throughput, len(systems))
		pools := make([]*pool.Pool, len(systems))
		for i, s := range systems {
			p, err := b.clusterPool(g, s.target)
			if err != nil {
				return err
			}
			defer closePool(p)
			if _, err := p.Map(ctx, "square", inputs[:min(n, 10_000)]); err != nil {
				return fmt.Errorf("%s %s: warm up: %w", s.name, g, err)
			}
			pools[i] = p
			rows[i] = Throughput{System: s.name, Guest: g, Tasks: n, Note: "Map of all inputs, Workers " + fmt.Sprint(b.opts.Workers)}
		}
		for range b.opts.Rounds {
			for i, s := range systems {
				var rs []pool.Result
				stop, err := b.startProfile(fmt.Sprintf("cluster-%s-%s.pprof", g, map[string]string{"": "local"}[s.target]+s.target))
				if err != nil {
					return err
				}
				t, err := timed(func() error {
					var err error
					rs, err = pools[i].Map(ctx, "square", inputs)
					return err
				})
				stop()
				if err != nil {
					return fmt.Errorf("%s %s: %w", s.name, g, err)
				}
				if err := checkResults(rs, n); err != nil {
					return fmt.Errorf("%s %s: %w", s.name, g, err)
				}
				rs = nil
				r := &rows[i]
				r.Runs = append(r.Runs, t.wall)
				r.Correct = true
				if r.Elapsed == 0 || t.wall < r.Elapsed {
					r.Elapsed, r.HostCPU, r.WorkerCPU = t.wall, t.hostCPU, t.workerCPU
				}
				b.opts.logf("cluster: %s %s: %.2f µs/task, host CPU %.2f µs/task", s.name, g, perTask(t.wall, n)/1e3, perTask(t.hostCPU, n)/1e3)
			}
		}
		cr.Throughput = append(cr.Throughput, rows...)
	}
	return nil
}

// clusterScenario is the cluster section: the pool on a cluster beside the
// local pool.
func (b *bench) clusterScenario(ctx context.Context) error {
	cr := &ClusterResults{}
	b.res.Cluster = cr
	return b.clusterThroughput(ctx, cr)
}

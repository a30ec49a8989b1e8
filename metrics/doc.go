// Package metrics is a Prometheus collector over a pool: tasks by final
// status, attempts, retries, worker starts, restarts and deaths (by cause
// and signal), breaker trips, queued and running tasks, task durations,
// the tasks' peak memory and the workers' resident memory.
//
// It is a package of its own so that programs that do not want it do not
// link the Prometheus client. It watches a pool as its
// Config.TaskObserver: workers keep running tasks in batches (task starts
// are not reported), and tasks are not reported one by one either: the
// collector is a [pool.Tallier], and the pool counts each attempt's end
// and each final result in the collector's [pool.Tally], a few additions
// under the lock that delivers the result anyway, with no Event and no
// record built. The collector reads the Tally, [pool.Pool.Snapshot] and
// each worker's /proc/PID/status when it is scraped:
//
//	c := metrics.New()
//	cfg.TaskObserver = c
//	p, err := pool.New(ctx, cfg)
//	...
//	c.Watch(p)
//	srv, err := metrics.Serve("127.0.0.1:9090", c) // or register c yourself
//	defer srv.Close()
//
// Set as cfg.Observer = c.Observe instead, it counts the same from the
// pool's Events, two per task, which costs more.
//
// The metrics, all prefixed safepool_:
//
//	tasks_total{status}              tasks by final status (ok, error, killed, memory_limit, timeout, not_run)
//	attempts_total{status}           attempts by how each ended
//	retries_total{status}            retries, by the status of the attempt that failed
//	worker_starts_total              workers that finished their handshake
//	worker_restarts_total            workers started (or spares promoted) to replace one that ended
//	worker_deaths_total{cause,signal} workers that ended other than by retiring (see pool.Event.Cause)
//	breaker_trips_total              times the start-up breaker opened
//	tasks_queued, tasks_in_flight, tasks_running   gauges, from Pool.Snapshot
//	workers_live                     worker slots with a live worker
//	worker_rss_bytes{worker}         each live worker's VmRSS, by slot
//	task_duration_seconds            histogram of attempts' durations
//	task_peak_memory_bytes           histogram of attempts' peak linear memory
package metrics

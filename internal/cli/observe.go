package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/safepool/safepool/metrics"
	"github.com/safepool/safepool/pool"
)

// logLevelFlag is --log-level: debug, info, warn or error. Unset means no
// logs.
type logLevelFlag struct {
	set   bool
	level slog.Level
}

func (l *logLevelFlag) String() string {
	if !l.set {
		return ""
	}
	return l.level.String()
}

func (l *logLevelFlag) Set(s string) error {
	switch s {
	case "debug":
		l.level = slog.LevelDebug
	case "info":
		l.level = slog.LevelInfo
	case "warn":
		l.level = slog.LevelWarn
	case "error":
		l.level = slog.LevelError
	default:
		return errors.New("not a level; use debug, info, warn or error")
	}
	l.set = true
	return nil
}

// logger returns the logger --log-level asks for, writing text records to
// stderr, or nil without the flag.
func (l *logLevelFlag) logger(stderr io.Writer) *slog.Logger {
	if !l.set {
		return nil
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: l.level}))
}

// observing is what --metrics and --log-level set up around a pool.
type observing struct {
	collector *metrics.Collector // nil without --metrics
	server    *metrics.Server
}

// startObserving serves --metrics, if asked, and sets the options' pool
// hooks: the collector as the pool's observer and the --log-level logger.
// Call watch once the pool is up, and close at the end.
func startObserving(o *runOptions, stderr io.Writer) (*observing, error) {
	o.logger = o.logLevel.logger(stderr)
	obs := &observing{}
	if o.metrics == "" {
		return obs, nil
	}
	c, srv, err := ServeMetrics(o.metrics, stderr)
	if err != nil {
		return nil, usageErrorf("--metrics %s: %v; give a free address such as 127.0.0.1:9090, or :0 for any port", o.metrics, err)
	}
	obs.collector, obs.server = c, srv
	o.observer = c
	return obs, nil
}

// ServeMetrics starts a collector and serves it, with the process's own
// metrics, at http://ADDR/metrics until the server is closed, and says
// where on stderr. A command that runs a pool sets the collector as the
// pool's Config.TaskObserver and calls Watch once the pool is up:
//
//	c, srv, err := ServeMetrics(addr, stderr)
//	cfg.TaskObserver = c
//	...
//	c.Watch(p)
//	defer srv.Close()
func ServeMetrics(addr string, stderr io.Writer) (*metrics.Collector, *metrics.Server, error) {
	c := metrics.New()
	srv, err := metrics.Serve(addr, c)
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(stderr, "safepool: serving metrics on http://%s/metrics\n", srv.Addr())
	return c, srv, nil
}

// watch points the collector at the pool, for its gauges.
func (obs *observing) watch(p *pool.Pool) {
	if obs.collector != nil {
		obs.collector.Watch(p)
	}
}

func (obs *observing) close() {
	if obs.server != nil {
		_ = obs.server.Close()
	}
}

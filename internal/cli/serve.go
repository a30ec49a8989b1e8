package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/safepool/safepool/cluster"
	"github.com/safepool/safepool/pool"
)

// serveOptions are the flags of 'safepool serve'.
type serveOptions struct {
	listen        string
	store         string
	routes        string
	clusterListen string
	clusterName   string
	nkeys         string // server: users' public keys
	conn          connFlags
	workers       int
	spares        int
	memory        int64
	name          string
	cacheDir      string
	metrics       string // --metrics ADDR
	logLevel      logLevelFlag
}

// connFlags are the connection flags 'safepool run' and 'safepool serve'
// share: the servers' URLs and how to authenticate with them.
type connFlags struct {
	nats     string
	creds    string
	nkeySeed string
	token    string
	user     string
	password string
	tlsCA    string
	tlsCert  string
	tlsKey   string
}

// add defines the connection flags on fs.
func (c *connFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&c.nats, "nats", "", "")
	fs.StringVar(&c.creds, "creds", "", "")
	fs.StringVar(&c.nkeySeed, "nkey-seed", "", "")
	fs.StringVar(&c.token, "token", "", "")
	fs.StringVar(&c.user, "user", "", "")
	fs.StringVar(&c.password, "password", "", "")
	fs.StringVar(&c.tlsCA, "tls-ca", "", "")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "")
	fs.StringVar(&c.tlsKey, "tls-key", "", "")
}

// options are the client options the flags give. The token may also come
// from $SAFEPOOL_TOKEN, which other users of the machine cannot read in
// the process list.
func (c *connFlags) options() cluster.Options {
	token := c.token
	if token == "" {
		token = os.Getenv("SAFEPOOL_TOKEN")
	}
	return cluster.Options{
		CredsFile: c.creds, NKeyFile: c.nkeySeed, Token: token, User: c.user, Password: c.password,
		TLSCA: c.tlsCA, TLSCert: c.tlsCert, TLSKey: c.tlsKey,
	}
}

// check checks the connection flags; set holds the flags given.
func (c *connFlags) check(set map[string]bool) error {
	if c.nats == "" {
		for _, f := range []string{"creds", "nkey-seed"} {
			if set[f] {
				return fmt.Errorf("--%s is for connecting to servers; add --nats URL, or drop it", f)
			}
		}
		return nil
	}
	for _, u := range strings.Split(c.nats, ",") {
		if !strings.HasPrefix(u, "nats://") && !strings.HasPrefix(u, "tls://") {
			return fmt.Errorf("--nats %s: %q is not a server URL; use nats://HOST:4222 (or tls://), several separated by commas", c.nats, u)
		}
	}
	switch {
	case (c.user == "") != (c.password == ""):
		return errors.New("--user and --password go together")
	case (c.tlsCert == "") != (c.tlsKey == ""):
		return errors.New("--tls-cert and --tls-key go together")
	}
	return nil
}

// parseServeFlags parses and checks the flags of 'safepool serve'.
func parseServeFlags(args []string, stdout io.Writer) (*serveOptions, error) {
	o := &serveOptions{}
	var bad error
	fs := flag.NewFlagSet("safepool serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	val := func(name string, v flag.Value) { fs.Var(flagValue{name, v, &bad}, name, "") }
	fs.StringVar(&o.listen, "listen", "", "")
	fs.StringVar(&o.store, "store", "", "")
	fs.StringVar(&o.routes, "routes", "", "")
	fs.StringVar(&o.clusterListen, "cluster-listen", "", "")
	fs.StringVar(&o.clusterName, "cluster-name", "", "")
	fs.StringVar(&o.nkeys, "nkey", "", "")
	o.conn.add(fs)
	val("workers", (*countFlag)(&o.workers))
	val("spares", (*countFlag)(&o.spares))
	val("memory", (*sizeFlag)(&o.memory))
	fs.StringVar(&o.name, "name", "", "")
	fs.StringVar(&o.cacheDir, "cache-dir", "", "")
	fs.StringVar(&o.metrics, "metrics", "", "")
	val("log-level", &o.logLevel)
	if err := fs.Parse(args); err != nil {
		switch {
		case errors.Is(err, flag.ErrHelp):
			fmt.Fprint(stdout, serveHelp)
			return nil, nil
		case bad != nil:
			return nil, usageErrorf("serve: %v", bad)
		}
		return nil, usageErrorf("serve: %s; run 'safepool serve -h' for the flags", parseError(err))
	}
	if fs.NArg() > 0 {
		return nil, usageErrorf("serve: unexpected argument %q; run 'safepool serve -h' for the flags", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := o.check(set); err != nil {
		return nil, usageErrorf("serve: %v", err)
	}
	return o, nil
}

// check checks the values against each other.
func (o *serveOptions) check(set map[string]bool) error {
	serverOnly := []string{"store", "routes", "cluster-listen", "cluster-name", "nkey"}
	switch {
	case o.listen == "" && o.conn.nats == "":
		return errors.New("give --listen HOST:PORT to run a server here (with an agent beside it), or --nats URL to run an agent for existing servers")
	case o.listen != "" && o.conn.nats != "":
		return errors.New("--listen runs a server here and --nats joins existing servers; give one of them")
	case o.workers < 0:
		return fmt.Errorf("--workers %d is negative; use a positive number, or 0 (the default) for one worker per CPU", o.workers)
	case o.spares < 0:
		return fmt.Errorf("--spares %d is negative; use 0 (the default) or more spare workers", o.spares)
	case set["memory"] && (o.memory < minMemory || o.memory > maxMemory):
		return fmt.Errorf("--memory %s is out of range; use a size from 64KiB to 4GiB, the largest memory cap of a task this agent takes", formatSize(o.memory))
	}
	if o.conn.nats != "" {
		for _, f := range serverOnly {
			if set[f] {
				return fmt.Errorf("--%s is for a server run here (--listen); drop it with --nats", f)
			}
		}
		return o.conn.check(set)
	}
	if set["creds"] || set["nkey-seed"] {
		return errors.New("--creds and --nkey-seed are for --nats; a server run here takes --token, --user and --password, or --nkey PUBKEY")
	}
	if (o.conn.user == "") != (o.conn.password == "") {
		return errors.New("--user and --password go together")
	}
	if (o.conn.tlsCert == "") != (o.conn.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if o.clusterListen != "" && o.routes == "" {
		return errors.New("--cluster-listen needs --routes: the cluster URLs of every server, such as --routes nats://h1:6222,nats://h2:6222,nats://h3:6222")
	}
	if o.routes != "" && o.clusterListen == "" {
		return errors.New("--routes needs --cluster-listen HOST:PORT, this server's own cluster address, such as 0.0.0.0:6222")
	}
	cfg := o.serverConfig()
	if err := checkPublic("--listen", o.listen, cfg); err != nil {
		return err
	}
	if o.clusterListen != "" && cfg.Token == "" && cfg.Password == "" {
		if err := checkPublic("--cluster-listen", o.clusterListen, cluster.ServerConfig{}); err != nil {
			return fmt.Errorf("%v (routes between servers authenticate with the token or the password)", strings.Replace(err.Error(), ", or --nkey PUBKEY", "", 1))
		}
	}
	return nil
}

// checkPublic refuses an address other machines reach, when cfg has no
// authentication.
func checkPublic(flagName, addr string, cfg cluster.ServerConfig) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %s is not HOST:PORT, such as 127.0.0.1:4222 or 0.0.0.0:4222", flagName, addr)
	}
	if cfg.Token != "" || cfg.Password != "" || len(cfg.NKeys) > 0 {
		return nil
	}
	ip := net.ParseIP(host)
	if host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("%s %s is reachable from other machines, and anyone who reaches it could run tasks and read results: add --token TOKEN (or $SAFEPOOL_TOKEN), --user NAME --password PASS, or --nkey PUBKEY", flagName, addr)
}

// serverConfig is the embedded server's config.
func (o *serveOptions) serverConfig() cluster.ServerConfig {
	opts := o.conn.options()
	cfg := cluster.ServerConfig{
		Listen: o.listen, StoreDir: o.store, Name: o.name,
		ClusterName: o.clusterName, ClusterListen: o.clusterListen,
		Token: opts.Token, User: opts.User, Password: opts.Password,
		TLSCert: opts.TLSCert, TLSKey: opts.TLSKey, TLSCA: opts.TLSCA,
	}
	if o.routes != "" {
		cfg.Routes = strings.Split(o.routes, ",")
	}
	if o.nkeys != "" {
		cfg.NKeys = strings.Split(o.nkeys, ",")
	}
	return cfg
}

// serveCommand is 'safepool serve': a server with an agent beside it, or
// an agent alone, until SIGINT or SIGTERM; then the agent gives back the
// work it holds, its workers stop, and the server shuts down.
func serveCommand(args []string, stdout, stderr io.Writer) error {
	o, err := parseServeFlags(args, stdout)
	if err != nil || o == nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop) // a second signal ends the program at once

	logf := func(format string, args ...any) { fmt.Fprintf(stderr, "safepool: "+format+"\n", args...) }
	agent := cluster.AgentConfig{
		Name: o.name, Workers: o.workers, Spares: o.spares, MaxMemory: o.memory,
		CacheDir: o.cacheDir, WorkerCommand: workerCommand(""), Logf: logf,
	}
	var observers []func(pool.Event)
	if logger := o.logLevel.logger(stderr); logger != nil {
		agent.Logf = func(format string, args ...any) { logger.Info(fmt.Sprintf(format, args...)) }
		observers = append(observers, func(e pool.Event) { logAgentEvent(logger, e) })
	}
	if o.metrics != "" {
		c, srv, err := ServeMetrics(o.metrics, stderr)
		if err != nil {
			return usageErrorf("serve: --metrics %s: %v; give a free address such as 127.0.0.1:9091, or :0 for any port", o.metrics, err)
		}
		defer srv.Close()
		observers = append(observers, c.Observe)
	}
	if len(observers) > 0 {
		agent.Observer = func(v any) {
			if e, ok := v.(pool.Event); ok {
				for _, f := range observers {
					f(e)
				}
			}
		}
	}
	if o.conn.nats != "" {
		opts := o.conn.options()
		opts.Logf = logf
		logf("agent for %s", o.conn.nats)
		err = cluster.RunAgent(ctx, o.conn.nats, opts, agent)
	} else {
		cfg := o.serverConfig()
		if cfg.StoreDir == "" {
			cfg.StoreDir = defaultStore()
		}
		err = cluster.Serve(ctx, cluster.ServeConfig{Server: cfg, Agent: agent, Ready: func(s *cluster.Server) {
			logf("serving on %s (store %s), with an agent beside it", s.ClientURL(), cfg.StoreDir)
		}})
	}
	switch {
	case errors.Is(err, cluster.ErrNoAuth):
		return usageErrorf("serve: %v", err)
	case err != nil:
		return failedErrorf("serve: %v", err)
	}
	logf("stopped")
	return nil
}

// logAgentEvent writes one of an agent's events as a structured record:
// worker starts at info, worker deaths and failed attempts at warn,
// attempts that succeeded at debug.
func logAgentEvent(l *slog.Logger, e pool.Event) {
	ctx := context.Background()
	attrs := []slog.Attr{slog.String("agent", e.Agent)}
	switch e.Kind {
	case pool.EventWorkerStart:
		l.LogAttrs(ctx, slog.LevelInfo, "worker started", append(attrs, slog.Int("pid", e.WorkerPID))...)
	case pool.EventWorkerExit:
		attrs = append(attrs, slog.Int("pid", e.WorkerPID), slog.String("cause", e.Cause))
		if e.Signal != "" {
			attrs = append(attrs, slog.String("signal", e.Signal))
		}
		level := slog.LevelWarn
		if e.Cause == "retired" || e.Cause == "stopped" {
			level = slog.LevelInfo
		}
		l.LogAttrs(ctx, level, "worker ended", append(attrs, slog.String("reason", e.Reason))...)
	case pool.EventTaskEnd:
		attrs = append(attrs, slog.String("func", e.Func), slog.String("status", e.Status.String()), slog.Int("pid", e.WorkerPID))
		if e.Status == pool.StatusOK {
			l.LogAttrs(ctx, slog.LevelDebug, "attempt ended", attrs...)
			return
		}
		l.LogAttrs(ctx, slog.LevelWarn, "attempt failed", append(attrs, slog.String("error", e.Reason))...)
	case pool.EventBreakerTrip:
		l.LogAttrs(ctx, slog.LevelError, "workers cannot be kept up", append(attrs, slog.String("reason", e.Reason))...)
	}
}

// defaultStore is where a server keeps its files by default.
func defaultStore() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "safepool", "nats")
}

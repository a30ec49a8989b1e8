package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/nats-io/nuid"

	"github.com/safepool/safepool/internal/remote"
	_ "github.com/safepool/safepool/pool" // sets remote.RunAgent
)

func init() {
	remote.Register(open, "embedded", "nats://", "tls://")
}

// AgentConfig configures an agent: its name, workers, spares, the largest
// memory cap it runs tasks with, its compilation cache and how it starts
// workers.
type AgentConfig = remote.AgentConfig

// ErrNoAgent is the error of a program in which package pool did not set
// up the agent.
var ErrNoAgent = errors.New("cluster: this program has no agent: package pool does not set one up")

// open opens a pool's side of the transport for cfg.Target.
func open(ctx context.Context, cfg remote.OpenConfig, h remote.Handler) (remote.Coordinator, error) {
	o, err := optionsOf(cfg.Options)
	if err != nil {
		return nil, err
	}
	if cfg.Target == "embedded" {
		return openEmbedded(ctx, cfg, o, h)
	}
	if !strings.HasPrefix(cfg.Target, "nats://") && !strings.HasPrefix(cfg.Target, "tls://") {
		return nil, fmt.Errorf("cluster: target %q: use \"embedded\" or server URLs such as nats://host1:4222,host2:4222", cfg.Target)
	}
	return openCoordinator(ctx, cfg.Target, o, h)
}

// openEmbedded starts a server in this process, a pool connected to it
// without a socket, and an agent beside them that runs the pool's tasks
// on local workers.
func openEmbedded(ctx context.Context, cfg remote.OpenConfig, o Options, h remote.Handler) (remote.Coordinator, error) {
	if remote.RunAgent == nil {
		return nil, ErrNoAgent
	}
	srv, err := StartServer(ServerConfig{Listen: "127.0.0.1:-1"})
	if err != nil {
		return nil, err
	}
	in := nats.InProcessServer(srv.inProcess())
	c, err := openCoordinator(ctx, srv.ClientURL(), o, h, in)
	if err != nil {
		srv.Shutdown()
		return nil, err
	}
	c.local = nuid.Next()
	stop, err := startAgent(srv.ClientURL(), o, remote.AgentConfig{
		Workers: cfg.Workers, Spares: cfg.Spares, CacheDir: cfg.CacheDir,
		WorkerCommand: cfg.WorkerCommand, Logf: o.Logf, Instance: c.local,
	}, in)
	if err != nil {
		c.Close()
		srv.Shutdown()
		return nil, err
	}
	c.onClose = func() {
		stop()
		srv.Shutdown()
	}
	return c, nil
}

// startAgent runs an agent on its own goroutine; stop cancels it and
// waits until it released what it held and its workers stopped.
func startAgent(urls string, o Options, cfg AgentConfig, extra ...nats.Option) (stop func(), err error) {
	nc, t, cfg, err := dialAgent(urls, o, cfg, extra...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := remote.RunAgent(ctx, cfg, t, t.subscribe); err != nil && ctx.Err() == nil {
			o.logf("the embedded agent stopped: %v", err)
		}
	}()
	return func() {
		cancel()
		<-done
		t.close()
		nc.Close()
	}, nil
}

// dialAgent connects an agent, named after its instance.
func dialAgent(urls string, o Options, cfg AgentConfig, extra ...nats.Option) (*nats.Conn, *agent, AgentConfig, error) {
	if cfg.Instance == "" {
		cfg.Instance = nuid.Next()
	}
	if cfg.Logf == nil {
		cfg.Logf = o.Logf
	}
	nc, err := connect(urls, &o, agentConnName(cfg.Instance), extra...)
	if err != nil {
		return nil, nil, cfg, err
	}
	return nc, newAgent(nc, cfg.Instance, cfg.Logf), cfg, nil
}

// RunAgent runs an agent connected to the servers at urls
// (comma-separated nats:// or tls:// URLs) until ctx is done, then
// releases the work it holds to its pools and stops its workers.
//
// # Errors
//
// A connection that cannot be made, or a program without an agent
// (ErrNoAgent), is an error at once; after that, RunAgent returns nil when
// ctx ends it.
func RunAgent(ctx context.Context, urls string, opts Options, cfg AgentConfig) error {
	if remote.RunAgent == nil {
		return ErrNoAgent
	}
	nc, t, cfg, err := dialAgent(urls, opts, cfg)
	if err != nil {
		return err
	}
	defer nc.Close()
	defer t.close()
	err = remote.RunAgent(ctx, cfg, t, t.subscribe)
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil
	}
	return err
}

// ServeConfig configures Serve: the server, and the agent beside it.
type ServeConfig struct {
	Server ServerConfig
	Agent  AgentConfig
	// Ready, when set, is called with the server once it accepts
	// connections.
	Ready func(*Server)
}

// Serve runs a NATS server with JetStream in this process, and an agent
// connected to it, until ctx is done; then the agent releases its work and
// stops its workers, and the server shuts down.
//
// # Errors
//
// A server config that is not safe (ErrNoAuth) or cannot start, and
// ErrNoAgent, are errors at once.
func Serve(ctx context.Context, cfg ServeConfig) error {
	if remote.RunAgent == nil {
		return ErrNoAgent
	}
	o := Options{Token: cfg.Server.Token, User: cfg.Server.User, Password: cfg.Server.Password, Logf: cfg.Agent.Logf}
	extra := []nats.Option{}
	if len(cfg.Server.NKeys) > 0 && o.Token == "" && o.User == "" {
		// The agent beside the server gets a key of its own.
		kp, err := nkeys.CreateUser()
		if err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		pub, _ := kp.PublicKey()
		cfg.Server.NKeys = append(slices.Clone(cfg.Server.NKeys), pub)
		extra = append(extra, nats.Nkey(pub, kp.Sign))
	}
	srv, err := StartServer(cfg.Server)
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	if cfg.Ready != nil {
		cfg.Ready(srv)
	}
	extra = append(extra, nats.InProcessServer(srv.inProcess()))
	nc, t, acfg, err := dialAgent(srv.ClientURL(), o, cfg.Agent, extra...)
	if err != nil {
		return err
	}
	defer nc.Close()
	defer t.close()
	err = remote.RunAgent(ctx, acfg, t, t.subscribe)
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil
	}
	return err
}

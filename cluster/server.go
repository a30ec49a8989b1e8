package cluster

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nuid"
)

// ServerConfig configures a NATS server with JetStream that runs inside
// this process. The zero value listens on a random loopback port, keeps
// its store in a new temporary directory and requires no authentication.
type ServerConfig struct {
	// Listen is the client address, HOST:PORT. Default "127.0.0.1:0": a
	// random loopback port (PORT 0 or -1 is a random one). A host that is not loopback needs Token,
	// User and Password, or NKeys.
	Listen string
	// StoreDir holds JetStream's files. Default: a new temporary
	// directory, removed by Shutdown.
	StoreDir string
	// Name names the server in the cluster. Default: random.
	Name string
	// ClusterName, ClusterListen (HOST:PORT) and Routes (URLs of the
	// other servers' cluster ports; one list with every server's, this
	// one's included, is fine) cluster this server with others.
	// ClusterName defaults to "safepool" when ClusterListen is set.
	ClusterName   string
	ClusterListen string
	Routes        []string
	// Token, or User and Password, or NKeys (users' public keys) are
	// what clients must present. Routes between servers authenticate
	// with the token or the password too.
	Token          string
	User, Password string
	NKeys          []string
	// TLSCert and TLSKey turn on TLS for clients; TLSCA also makes the
	// server verify client certificates.
	TLSCert, TLSKey, TLSCA string
}

// Server is a NATS server with JetStream running in this process.
type Server struct {
	s       *server.Server
	tempDir string // removed by Shutdown; "" when the store is the caller's
}

// ErrNoAuth is the error of a server config that listens beyond this
// machine without authentication.
var ErrNoAuth = errors.New("cluster: a server that listens on a non-loopback address needs authentication")

// disconnectSubject is where the server publishes client disconnect
// advisories for the global account, the account every client of a
// server started here belongs to.
const disconnectSubject = "$SYS.ACCOUNT.$G.DISCONNECT"

// StartServer starts a server and waits until it accepts connections.
//
// # Errors
//
// A config that listens on a non-loopback address without authentication
// is ErrNoAuth; bad addresses, routes, TLS files or a server that does not
// become ready are errors that say which.
func StartServer(cfg ServerConfig) (*Server, error) {
	opts, err := cfg.options()
	if err != nil {
		return nil, err
	}
	srv := &Server{}
	if opts.StoreDir == "" {
		if srv.tempDir, err = os.MkdirTemp("", "safepool-nats-"); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		opts.StoreDir = srv.tempDir
	}
	s, err := server.NewServer(opts)
	if err != nil {
		srv.removeTemp()
		return nil, fmt.Errorf("cluster: start the server: %w", err)
	}
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		srv.removeTemp()
		return nil, fmt.Errorf("cluster: the server on %s did not accept connections within 30s", cfg.listen())
	}
	srv.s = s
	if err := srv.shareDisconnects(); err != nil {
		srv.Shutdown()
		return nil, err
	}
	return srv, nil
}

// shareDisconnects lets the clients of the global account, pools among
// them, see the server's advisory when a client disconnects: the system
// account exports it and the global account imports it. A pool learns
// from it, within milliseconds, that an agent is gone.
func (srv *Server) shareDisconnects() error {
	sys, global := srv.s.SystemAccount(), srv.s.GlobalAccount()
	if sys == nil || global == nil {
		return nil
	}
	if err := sys.AddStreamExport(disconnectSubject, []*server.Account{global}); err != nil {
		return fmt.Errorf("cluster: export disconnect advisories: %w", err)
	}
	if err := global.AddStreamImport(sys, disconnectSubject, ""); err != nil {
		return fmt.Errorf("cluster: import disconnect advisories: %w", err)
	}
	return nil
}

// ClientURL is the URL clients connect to.
func (srv *Server) ClientURL() string { return srv.s.ClientURL() }

// ClusterURL is the URL other servers route to, "" when the server is
// not clustered.
func (srv *Server) ClusterURL() string {
	a := srv.s.ClusterAddr()
	if a == nil {
		return ""
	}
	return fmt.Sprintf("nats://%s", net.JoinHostPort(a.IP.String(), strconv.Itoa(a.Port)))
}

// Name is the server's name in its cluster.
func (srv *Server) Name() string { return srv.s.Name() }

// Shutdown stops the server and removes its temporary store. It is safe
// to call more than once.
func (srv *Server) Shutdown() {
	if srv.s != nil {
		srv.s.Shutdown()
		srv.s.WaitForShutdown()
	}
	srv.removeTemp()
}

func (srv *Server) removeTemp() {
	if srv.tempDir != "" {
		os.RemoveAll(srv.tempDir)
		srv.tempDir = ""
	}
}

// InProcessConn connects a client without a socket; nats.InProcessServer
// takes the server itself.
func (srv *Server) inProcess() *server.Server { return srv.s }

func (cfg *ServerConfig) listen() string {
	if cfg.Listen == "" {
		return "127.0.0.1:-1"
	}
	return cfg.Listen
}

func (cfg *ServerConfig) hasAuth() bool {
	return cfg.Token != "" || (cfg.User != "" && cfg.Password != "") || len(cfg.NKeys) > 0
}

// options turns the config into the server's options.
func (cfg *ServerConfig) options() (*server.Options, error) {
	host, port, err := hostPort("listen address", cfg.listen())
	if err != nil {
		return nil, err
	}
	if (cfg.User == "") != (cfg.Password == "") {
		return nil, errors.New("cluster: a user needs a password and a password a user")
	}
	if !isLoopback(host) && !cfg.hasAuth() {
		return nil, fmt.Errorf("%w: %s is reachable from other machines; require a token, a user and password, or an nkey", ErrNoAuth, cfg.listen())
	}
	name := cfg.Name
	if name == "" {
		name = "safepool-" + nuid.Next()
	}
	opts := &server.Options{
		ServerName: name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: 1 << 20,
	}
	switch {
	case cfg.Token != "":
		opts.Authorization = cfg.Token
	case cfg.User != "":
		opts.Username, opts.Password = cfg.User, cfg.Password
	}
	for _, k := range cfg.NKeys {
		opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: k})
	}
	if err := cfg.tls(opts); err != nil {
		return nil, err
	}
	if err := cfg.clustering(opts); err != nil {
		return nil, err
	}
	return opts, nil
}

// tls sets up TLS for clients.
func (cfg *ServerConfig) tls(opts *server.Options) error {
	if cfg.TLSCert == "" && cfg.TLSKey == "" && cfg.TLSCA == "" {
		return nil
	}
	if cfg.TLSCert == "" || cfg.TLSKey == "" {
		return errors.New("cluster: TLS needs both a certificate and its key")
	}
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey, CaFile: cfg.TLSCA, Verify: cfg.TLSCA != "",
	})
	if err != nil {
		return fmt.Errorf("cluster: TLS: %w", err)
	}
	opts.TLSConfig, opts.TLS, opts.TLSVerify = tc, true, cfg.TLSCA != ""
	opts.TLSTimeout = 5
	return nil
}

// clustering sets up routes to other servers. Routes authenticate with the
// clients' token or password, so that a cluster port reachable from other
// machines does not let anyone in as a server.
func (cfg *ServerConfig) clustering(opts *server.Options) error {
	if cfg.ClusterListen == "" {
		if len(cfg.Routes) > 0 {
			return errors.New("cluster: routes to other servers need a cluster listen address of this server's own")
		}
		return nil
	}
	host, port, err := hostPort("cluster listen address", cfg.ClusterListen)
	if err != nil {
		return err
	}
	if len(cfg.Routes) == 0 {
		// JetStream refuses to start clustered without them.
		return errors.New("cluster: a clustered server needs routes: the cluster URLs of the other servers (this one's own may be listed too, as in one list for every server)")
	}
	secret := cfg.Token
	if secret == "" {
		secret = cfg.Password
	}
	if !isLoopback(host) && secret == "" {
		return fmt.Errorf("%w: the cluster address %s is reachable from other machines; routes authenticate with a token or a user's password", ErrNoAuth, cfg.ClusterListen)
	}
	opts.Cluster = server.ClusterOpts{Name: cfg.ClusterName, Host: host, Port: port}
	if opts.Cluster.Name == "" {
		opts.Cluster.Name = "safepool"
	}
	if secret != "" {
		opts.Cluster.Username, opts.Cluster.Password = "safepool-route", secret
	}
	for _, r := range cfg.Routes {
		u, err := url.Parse(strings.TrimSpace(r))
		if err != nil || u.Host == "" {
			return fmt.Errorf("cluster: route %q is not a URL such as nats://host2:6222", r)
		}
		if secret != "" && u.User == nil {
			u.User = url.UserPassword("safepool-route", secret)
		}
		opts.Routes = append(opts.Routes, u)
	}
	return nil
}

// hostPort splits HOST:PORT; PORT 0 or -1 is a random port.
func hostPort(what, addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("cluster: %s %q is not HOST:PORT, such as 127.0.0.1:4222", what, addr)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("cluster: %s %q: bad port %q", what, addr, p)
	}
	if port == 0 {
		port = -1 // the server's own 0 means its default port
	}
	return host, port, nil
}

// isLoopback says whether host is reachable from this machine only.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

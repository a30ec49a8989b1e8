package cluster

import (
	"errors"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Options say how to connect to NATS servers: credentials and TLS. A pool
// takes them as Config.ClusterOptions, either an Options or a *Options.
// The zero value connects with what the URL says (nats://user:pass@host
// and nats://token@host work).
type Options struct {
	// Name names the connection; default "safepool-pool" or
	// "safepool-agent/INSTANCE". An agent's name always ends in its
	// instance, which is how pools tell which agent disconnected.
	Name string
	// CredsFile is a credentials file (a JWT and an nkey seed).
	CredsFile string
	// NKeyFile is a file that holds an nkey seed.
	NKeyFile string
	// Token, or User and Password, authenticate with the server.
	Token          string
	User, Password string
	// TLSCA verifies the servers' certificates; TLSCert and TLSKey are
	// this client's certificate, for servers that ask for one.
	TLSCA, TLSCert, TLSKey string
	// Logf, when set, gets one line per notable event, such as a server
	// that does not share its disconnect advisories. Default: the
	// standard logger.
	Logf func(format string, args ...any)

	// noAdvisories, for tests only (see export_test.go), keeps a pool
	// from subscribing to disconnect advisories, so that it learns of a
	// lost agent from its missing heartbeats.
	noAdvisories bool
}

// ErrOptions is the error of a Config.ClusterOptions of a type other than
// Options.
var ErrOptions = errors.New("cluster: Config.ClusterOptions must be a cluster.Options")

// optionsOf reads a pool's ClusterOptions.
func optionsOf(v any) (Options, error) {
	switch o := v.(type) {
	case nil:
		return Options{}, nil
	case Options:
		return o, nil
	case *Options:
		if o == nil {
			return Options{}, nil
		}
		return *o, nil
	}
	return Options{}, fmt.Errorf("%w (or a *cluster.Options), not %T", ErrOptions, v)
}

func (o *Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
		return
	}
	log.Printf("safepool: "+format, args...)
}

// natsOptions maps the options onto nats.go's, with the connection named
// name unless o.Name is set.
func (o *Options) natsOptions(name string) ([]nats.Option, error) {
	if o.Name != "" && name == poolName {
		name = o.Name
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.Timeout(5 * time.Second),
	}
	if o.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.NKeyFile != "" {
		opt, err := nats.NkeyOptionFromSeed(o.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("cluster: nkey seed file %s: %w", o.NKeyFile, err)
		}
		opts = append(opts, opt)
	}
	if o.Token != "" {
		opts = append(opts, nats.Token(o.Token))
	}
	if (o.User == "") != (o.Password == "") {
		return nil, errors.New("cluster: a user needs a password and a password a user")
	}
	if o.User != "" {
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, errors.New("cluster: a TLS client certificate needs its key and a key its certificate")
	}
	if o.TLSCert != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	return opts, nil
}

// connect connects to the servers at urls (comma-separated).
func connect(urls string, o *Options, name string, extra ...nats.Option) (*nats.Conn, error) {
	opts, err := o.natsOptions(name)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(urls, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("cluster: connect to %s: %w", redact(urls), err)
	}
	return nc, nil
}

// redact hides passwords and tokens in URLs, for messages.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		scheme, rest, ok := strings.Cut(p, "://")
		if !ok {
			continue
		}
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			parts[i] = scheme + "://***@" + rest[at+1:]
		}
	}
	return strings.Join(parts, ",")
}

// Command plugins is a small plugin host: it runs untrusted WebAssembly
// plugins side by side, one pool per plugin, each with its own memory cap
// and deadline. The rogue plugin spins, floods memory and tries to read a
// file; the other plugins, called at the same time, are not disturbed.
// The catalog plugin uses only what it is granted: a host function, an
// environment variable and a read-only directory. The csquare plugin is
// written in C, not Go: the pool treats every SDK module alike.
//
//	go run ./examples/plugins
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/safepool/safepool/internal/guestbuild"
	"github.com/safepool/safepool/pool"
)

const mib = 1 << 20

// plugin is one untrusted module and the calls the host makes to it.
type plugin struct {
	name    string
	wasm    string        // a committed module, relative to the repository root; "" builds guests/<name> from Go
	memory  int64         // linear-memory cap of each call
	timeout time.Duration // deadline of each call
	calls   []call
	grant   func(*pool.Config) // what the plugin may use; nothing without it
}

type call struct{ fn, input string }

var plugins = []plugin{
	{name: "greet", memory: 16 * mib, timeout: time.Second, calls: []call{
		{"greet", `"ada"`}, {"greet", `"grace"`}, {"greet", `"linus"`},
	}},
	{name: "wordcount", memory: 16 * mib, timeout: time.Second, calls: []call{
		{"count", `"the quick brown fox"`}, {"count", `"one\ntwo\nthree"`}, {"count", `""`},
	}},
	{name: "rogue", memory: 32 * mib, timeout: 500 * time.Millisecond, calls: []call{
		{"spin", `null`}, {"flood", `null`}, {"snoop", `null`}, {"hello", `null`},
	}},
	{name: "catalog", memory: 16 * mib, timeout: time.Second, calls: []call{
		{"price", `"apple"`}, {"price", `"durian"`}, {"motd", `{}`},
	}, grant: grantCatalog},
	{name: "csquare", wasm: "examples/plugins/guests/csquare/csquare.wasm", memory: 16 * mib, timeout: time.Second, calls: []call{
		{"square", `12`}, {"upper", `c plugin`}, {"env", ``}, {"fail", `x`},
	}, grant: grantCSquare},
}

// prices is the host's data, which the catalog plugin reaches only through
// the price host function.
var prices = map[string]string{"apple": "1.20", "pear": "0.90"}

// grantCatalog gives the catalog plugin a host function, one environment
// variable and a read-only directory, and nothing else.
func grantCatalog(cfg *pool.Config) {
	cfg.HostFuncs = map[string]pool.HostFunc{
		"price": func(ctx context.Context, item []byte) ([]byte, error) {
			p, ok := prices[string(item)]
			if !ok {
				return nil, fmt.Errorf("no such item %s", item)
			}
			return []byte(p), nil
		},
	}
	cfg.Env = map[string]string{"CURRENCY": "EUR"}
	cfg.Dirs = []pool.Dir{{HostPath: configDir, GuestPath: "/config"}}
}

// grantCSquare gives the C plugin the host function "upper" and the
// variable GREETING.
func grantCSquare(cfg *pool.Config) {
	cfg.HostFuncs = map[string]pool.HostFunc{
		"upper": func(ctx context.Context, in []byte) ([]byte, error) {
			return []byte(strings.ToUpper(string(in))), nil
		},
	}
	cfg.Env = map[string]string{"GREETING": "hello from the host"}
}

// configDir is the directory granted to the catalog plugin, read-only.
var configDir string

// row is one call's line in the table.
type row struct {
	plugin *plugin
	call   call
	res    pool.Result
	took   time.Duration
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "plugins:", err)
		os.Exit(1)
	}
}

func run() error {
	dir, err := os.MkdirTemp("", "plugins-config-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(dir+"/motd.txt", []byte("welcome"), 0o644); err != nil {
		return err
	}
	configDir = dir

	// One pool per plugin: separate processes, separate caps. A plugin
	// that misbehaves costs its own calls, never another plugin's.
	pools := make([]*pool.Pool, len(plugins))
	for i, pl := range plugins {
		module, err := modulePath(pl)
		if err != nil {
			return err
		}
		cfg := pool.Config{Module: module, Workers: 1, MemoryLimit: pl.memory, Timeout: pl.timeout}
		if pl.grant != nil {
			pl.grant(&cfg)
		}
		p, err := pool.New(context.Background(), cfg)
		if err != nil {
			return fmt.Errorf("plugin %s: %w", pl.name, err)
		}
		defer p.Close()
		pools[i] = p
	}

	// Every plugin is called at the same time; each plugin's calls run in
	// order.
	rows := make([][]row, len(plugins))
	var wg sync.WaitGroup
	for i := range plugins {
		wg.Go(func() {
			pl := &plugins[i]
			for _, c := range pl.calls {
				start := time.Now()
				res, _ := pools[i].Apply(context.Background(), c.fn, []byte(c.input))
				rows[i] = append(rows[i], row{plugin: pl, call: c, res: res, took: time.Since(start)})
			}
		})
	}
	wg.Wait()

	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "plugin\tcaps\tcall\tstatus\ttime\tresult")
	for _, rs := range rows {
		for _, r := range rs {
			caps := fmt.Sprintf("%d MiB, %s", r.plugin.memory/mib, r.plugin.timeout)
			fmt.Fprintf(w, "%s\t%s\t%s(%s)\t%s\t%s\t%s\n", r.plugin.name, caps, r.call.fn, r.call.input,
				r.res.Status, fmt.Sprintf("%.1fms", r.took.Seconds()*1000), result(r.res))
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}

	ok, total := 0, 0
	for _, rs := range rows[:2] {
		for _, r := range rs {
			total++
			if r.res.Status == pool.StatusOK {
				ok++
			}
		}
	}
	fmt.Printf("\nthe well-behaved plugins: %d of %d calls ok while rogue misbehaved\n", ok, total)
	return nil
}

// modulePath returns the plugin's module: its committed file, or its Go
// package built for wasip1.
func modulePath(pl plugin) (string, error) {
	if pl.wasm == "" {
		return guestbuild.Build("examples/plugins/guests/" + pl.name)
	}
	root, err := guestbuild.Root()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, filepath.FromSlash(pl.wasm)), nil
}

// result is a call's output, or the first line of its error, cut short.
func result(r pool.Result) string {
	s := string(r.Output)
	if r.Status != pool.StatusOK {
		s, _, _ = strings.Cut(r.Error, "\n")
	}
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

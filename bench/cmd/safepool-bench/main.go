// Command safepool-bench measures safepool side by side with plain
// goroutines, in-process wazero and Python's process pools, and writes
// bench/RESULTS.md with an SVG chart. See bench/README.md.
//
//	go run ./bench/cmd/safepool-bench                 # full run, a few minutes
//	go run ./bench/cmd/safepool-bench -quick          # smoke run, well under a minute
//	go run ./bench/cmd/safepool-bench -from bench/results.json   # render again, measure nothing
//
// Run it from the repository root: the Go guest is built from
// internal/testguest/testdata. Worker processes are this binary
// re-executed, so it must not be run with a different binary as worker.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/safepool/safepool/bench/harness"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "safepool-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		quick   = flag.Bool("quick", false, "small sizes: checks every scenario works, in well under a minute")
		quiet   = flag.Duration("quiet", -1, "how long each measurement waits for an idle machine (default 20s; quick 0: no wait)")
		out     = flag.String("out", "bench/RESULTS.md", "the report to write")
		chart   = flag.String("chart", "results.svg", "the chart to write, relative to the report's directory; empty for none")
		jsonOut = flag.String("json", "results.json", "the raw results to write, relative to the report's directory; empty for none")
		from    = flag.String("from", "", "render the report from results saved by -json instead of measuring")
		only    = flag.String("only", "", "comma-separated scenarios to run: "+strings.Join(harness.Scenarios, ","))
		python  = flag.String("python", "", `Python interpreter for the baselines: "" looks up python3, "none" skips them`)
		peerPy  = flag.String("peer-python", "", `Python interpreter for the peers (billiard, pebble, joblib) and the kill and memory scenarios: "" picks the one that imports the most peers (Debian's /usr/bin/python3 after `+harness.InstallPeers+`), "none" skips them`)
		readme  = flag.String("readme", "", "also rewrite tables of this README from the results (see -readme-tables)")
		tables  = flag.String("readme-tables", harness.ReadmeCompareTable, "the README tables -readme rewrites, comma-separated: "+strings.Join(harness.ReadmeTables, ", ")+" (compare: between the compare:begin and compare:end markers, from the kill matrix and memory scenario; targets: between targets:begin and targets:end, from a full run)")
		cache   = flag.String("cache", "", "compilation cache of the warm runs (default: a directory under $TMPDIR kept between runs)")
		profile = flag.String("cpuprofile", "", "directory for CPU profiles of this process during the safepool throughput runs")
		n       = flag.Int("n", 0, "tasks per throughput run (default 1,000,000; quick 20,000)")
		rounds  = flag.Int("rounds", 0, "throughput runs per system, taking turns; each keeps its best (default 3; quick 1)")
		samples = flag.Int("samples", 0, "round trips timed per system in the latency scenario (default 5,000; quick 300)")
		kills   = flag.Int("kills", 0, "kills per kill-recovery measurement (default 20; quick 3)")
		streamN = flag.Int("stream-n", 0, "items Imap streams in the memory scenario (default 10,000,000; quick 100,000)")
	)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: safepool-bench [flags]\n\nMeasures safepool beside goroutines, in-process wazero and Python, and writes a Markdown report.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		return fmt.Errorf("unexpected arguments: %s", strings.Join(flag.Args(), " "))
	}

	for _, name := range strings.Split(*tables, ",") {
		if !slices.Contains(harness.ReadmeTables, name) {
			return fmt.Errorf("-readme-tables: no README table %q; the tables are %s", name, strings.Join(harness.ReadmeTables, ", "))
		}
	}

	dir := filepath.Dir(*out)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var res *harness.Results
	if *from != "" {
		var err error
		if res, err = harness.Load(*from); err != nil {
			return err
		}
	} else {
		opts := harness.FullOptions()
		if *quick {
			opts = harness.QuickOptions()
		}
		for _, o := range []struct {
			flag int
			dst  *int
		}{{*n, &opts.ThroughputN}, {*rounds, &opts.Rounds}, {*samples, &opts.LatencySamples}, {*kills, &opts.Kills}, {*streamN, &opts.StreamN}} {
			if o.flag > 0 {
				*o.dst = o.flag
			}
		}
		if *only != "" {
			opts.Only = strings.Split(*only, ",")
		}
		if *quiet >= 0 {
			opts.Quiet = *quiet
			opts.QuietBudget = max(opts.QuietBudget, 15**quiet)
		}
		opts.Python = *python
		opts.PeerPython = *peerPy
		opts.CacheDir = *cache
		opts.CPUProfile = *profile
		opts.Log = os.Stderr

		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		var err error
		if res, err = harness.Run(ctx, opts); err != nil {
			return err
		}
		if *jsonOut != "" {
			if err := res.Save(filepath.Join(dir, *jsonOut)); err != nil {
				return err
			}
		}
	}

	if *chart != "" {
		f, err := os.Create(filepath.Join(dir, *chart))
		if err != nil {
			return err
		}
		err = harness.WriteChart(f, res)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	err = harness.WriteReport(f, res, *chart)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s\n", *out)
	if *readme != "" {
		names := strings.Split(*tables, ",")
		if err := harness.UpdateReadme(*readme, res, names...); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote the %s table(s) in %s\n", strings.Join(names, " and "), *readme)
	}
	if len(res.Failures) > 0 {
		return fmt.Errorf("%d scenario(s) failed; see the report's Failures section", len(res.Failures))
	}
	return nil
}

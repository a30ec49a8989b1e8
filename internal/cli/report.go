package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	statsreport "github.com/safepool/safepool/internal/report"
)

const reportHelp = `Usage:
  safepool report --stats FILE [--killed FILE] -o report.html

Writes one self-contained HTML page about a run, from the --stats file
(and the --killed file) 'safepool run' wrote: a timeline with a lane per
worker (per agent and worker, for a cluster's stats), each attempt a bar
from its start to its end coloured by status, kills and worker restarts
marked, each retry linked to the attempt before it; a histogram of the
attempts' durations; and a summary of statuses, attempts and killed tasks
with their reasons. The page loads nothing from the network.

The stats file is read twice, streaming: a run of millions of tasks
renders in bounded memory, short attempts drawn as cells.

Flags:
  --stats FILE       the run's --stats file (required)
  --killed FILE      the run's --killed file, for the killed tasks' reasons
  -o, --out FILE     the page to write (required)
  --title TEXT       the page's title (default "safepool run")
`

// reportCommand is 'safepool report'.
func reportCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("safepool report", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var opt statsreport.Options
	var out string
	fs.StringVar(&opt.Stats, "stats", "", "")
	fs.StringVar(&opt.Killed, "killed", "", "")
	fs.StringVar(&opt.Title, "title", "", "")
	fs.StringVar(&out, "o", "", "")
	fs.StringVar(&out, "out", "", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, reportHelp)
			return nil
		}
		return usageErrorf("report: %s; run 'safepool report -h' for the flags", parseError(err))
	}
	switch {
	case fs.NArg() > 0:
		return usageErrorf("report: unexpected argument %q; run 'safepool report -h' for the flags", fs.Arg(0))
	case opt.Stats == "":
		return usageErrorf("report: --stats FILE is required: the file 'safepool run --stats FILE' wrote")
	case out == "":
		return usageErrorf("report: -o FILE is required: where to write the page, such as -o report.html")
	}
	f, err := os.Create(out)
	if err != nil {
		return usageErrorf("report: %v", err)
	}
	if err := statsreport.Render(f, opt); err != nil {
		f.Close()
		os.Remove(out)
		if errors.Is(err, os.ErrNotExist) {
			return usageErrorf("%v", err)
		}
		return failedErrorf("%v", err)
	}
	if err := f.Close(); err != nil {
		return failedErrorf("report: %v", err)
	}
	fmt.Fprintf(stderr, "safepool: wrote %s\n", out)
	return nil
}

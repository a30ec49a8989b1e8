package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/safepool/safepool/bench/python"
)

// pyRunner runs bench/python/baseline.py, one scenario per call, so that
// each Python figure is taken next to the figures it is compared with, and
// bench/python/cli_baseline.py for the command-line scenario.
type pyRunner struct {
	exe       string // empty when the baselines do not run
	script    string
	cliScript string
	cliExe    string // the interpreter's sys.executable
	opts      *Options
}

// pyOutput is what baseline.py prints. Durations are in seconds.
type pyOutput struct {
	Version    string         `json:"version"`
	Throughput []pyThroughput `json:"throughput"`
	Latency    []struct {
		System  string  `json:"system"`
		Samples int     `json:"samples"`
		P50     float64 `json:"p50"`
		P99     float64 `json:"p99"`
		Max     float64 `json:"max"`
		Mean    float64 `json:"mean"`
		// Raw holds every sample, sorted, so that rounds can be merged.
		Raw []float64 `json:"raw"`
	} `json:"latency"`
	Startup []pyStartup `json:"startup"`
	Memory  *struct {
		System string  `json:"system"`
		KiB    []int64 `json:"kib"`
	} `json:"memory"`
}

// pyThroughput is one system's throughput run, as the Python scripts print
// it.
type pyThroughput struct {
	System  string  `json:"system"`
	Tasks   int     `json:"tasks"`
	Seconds float64 `json:"seconds"`
	Correct bool    `json:"correct"`
	Note    string  `json:"note"`
}

// pyStartup is one system's start-up times, in seconds.
type pyStartup struct {
	System string    `json:"system"`
	Times  []float64 `json:"times"`
}

// newPyRunner finds the interpreter and writes the embedded scripts to dir.
// When python3 is missing it returns a runner that runs nothing, and says
// why in info.
func newPyRunner(opts *Options, dir string, info *PythonInfo) *pyRunner {
	r := &pyRunner{opts: opts}
	if opts.Python == "none" {
		info.Reason = "skipped (Python baselines turned off)"
		return r
	}
	exe := opts.Python
	if exe == "" {
		exe = "python3"
	}
	path, err := exec.LookPath(exe)
	if err != nil {
		info.Reason = fmt.Sprintf("not run: %s is not installed (%v)", exe, err)
		return r
	}
	out, err := exec.Command(path, "-c", "import sys, multiprocessing, concurrent.futures; print(sys.version.split()[0]); print(sys.executable)").Output()
	if err != nil {
		info.Reason = fmt.Sprintf("not run: %s cannot import multiprocessing: %v", path, err)
		return r
	}
	version, real, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	// The script timed from outside runs on the interpreter itself: a
	// launcher such as a pyenv shim would add its own processes and time.
	r.cliExe = path
	if real = strings.TrimSpace(real); real != "" {
		r.cliExe = real
	}
	r.script = filepath.Join(dir, "baseline.py")
	r.cliScript = filepath.Join(dir, "cli_baseline.py")
	for _, f := range []struct {
		path string
		text []byte
	}{{r.script, python.Baseline}, {r.cliScript, python.CLIBaseline}} {
		if err := os.WriteFile(f.path, f.text, 0o644); err != nil {
			info.Reason = fmt.Sprintf("not run: %v", err)
			return r
		}
	}
	r.exe = path
	info.Ran = true
	info.Version = strings.TrimSpace(version)
	return r
}

func (r *pyRunner) enabled() bool { return r.exe != "" }

// run runs one scenario of the script. extra flags override the ones made
// from the options.
func (r *pyRunner) run(scenario string, extra ...string) (*pyOutput, error) {
	if !r.enabled() {
		return nil, nil
	}
	o := r.opts
	args := []string{r.script, "--only", scenario,
		"--workers", strconv.Itoa(o.Workers),
		"--n", strconv.Itoa(o.ThroughputN),
		"--chunk1-n", strconv.Itoa(o.PythonChunk1N),
		"--latency-samples", strconv.Itoa(o.LatencySamples),
		"--starts", strconv.Itoa(o.WarmStarts),
	}
	args = append(args, extra...)
	out, stderr, err := runScript(20*time.Minute, r.exe, args...)
	if err != nil {
		return nil, fmt.Errorf("python baseline %s: %v: %s", scenario, err, lastBytes(stderr, 2000))
	}
	var po pyOutput
	if err := json.Unmarshal(out, &po); err != nil {
		return nil, fmt.Errorf("python baseline %s: bad output: %v", scenario, err)
	}
	return &po, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

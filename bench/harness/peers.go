package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/safepool/safepool/bench/python"
)

// Peers are the Python process pools beyond the standard library that the
// harness measures, by the name their Debian package imports.
var Peers = []string{"billiard", "pebble", "joblib"}

// InstallPeers is the command that installs every peer on Debian.
const InstallPeers = "apt-get install -y python3-pebble python3-billiard python3-joblib"

// debianPython is Debian's own interpreter, the one that sees packages
// installed with apt-get (in /usr/lib/python3/dist-packages); an interpreter
// of pyenv or a virtual environment does not.
const debianPython = "/usr/bin/python3"

// PeersInfo says which interpreter ran the peers and which peers it had.
type PeersInfo struct {
	// Python is the interpreter the peers ran on (its sys.executable), and
	// Version its version; empty when none was found.
	Python  string
	Version string
	// Versions maps each peer found to its version.
	Versions map[string]string
	// Missing maps each peer that was not found to why.
	Missing map[string]string
	// Reason says why no peer ran at all, when none did.
	Reason string
}

// Found reports whether peer ran.
func (p PeersInfo) Found(peer string) bool { _, ok := p.Versions[peer]; return ok }

// peerRunner runs bench/python/peers.py on the interpreter that has the
// most peers.
type peerRunner struct {
	exe    string // empty when no interpreter was found
	script string
	opts   *Options
}

// peerOutput is what peers.py prints. Durations are in seconds.
type peerOutput struct {
	Version    string                       `json:"version"`
	Executable string                       `json:"executable"`
	Probe      map[string]map[string]string `json:"probe"`
	Throughput []pyThroughput               `json:"throughput"`
	Latency    []struct {
		System string    `json:"system"`
		Raw    []float64 `json:"raw"`
	} `json:"latency"`
	Startup []pyStartup `json:"startup"`
	Kills   []pyKill    `json:"kills"`
	OOM     []pyKill    `json:"oom"`
}

// pyKill is one system's row of the kill matrix or of the memory-kill
// scenario, as peers.py prints it.
type pyKill struct {
	System  string  `json:"system"`
	Mode    string  `json:"mode"`
	Tasks   int     `json:"tasks"`
	Seconds float64 `json:"seconds"`
	Kill    string  `json:"kill"`
	Outcome string  `json:"outcome"`
	OK      int     `json:"ok"`
	InOrder bool    `json:"in_order"`
	Lost    []int   `json:"lost"`
	Retried bool    `json:"retried"`
	Named   bool    `json:"named"`
	Error   string  `json:"error"`
	After   string  `json:"after"`
	Detail  string  `json:"detail"`
}

// newPeerRunner writes peers.py to dir and picks its interpreter:
// opts.PeerPython when set, else whichever of python3 on PATH and Debian's
// /usr/bin/python3 imports the most peers (the first on a tie). What it
// found goes to info.
func newPeerRunner(opts *Options, dir string, info *PeersInfo) *peerRunner {
	r := &peerRunner{opts: opts, script: filepath.Join(dir, "peers.py")}
	info.Versions, info.Missing = map[string]string{}, map[string]string{}
	missAll := func(why string) {
		info.Reason = why
		for _, p := range Peers {
			info.Missing[p] = why
		}
	}
	if opts.PeerPython == "none" {
		missAll("skipped (-peer-python none)")
		return r
	}
	if err := os.WriteFile(r.script, python.Peers, 0o644); err != nil {
		missAll(err.Error())
		return r
	}
	candidates := []string{opts.PeerPython}
	if opts.PeerPython == "" {
		candidates = []string{"python3", debianPython}
		if opts.Python != "" && opts.Python != "none" {
			candidates = append([]string{opts.Python}, candidates...)
		}
	}
	var best *peerOutput
	var tried []string
	for _, c := range candidates {
		path, err := exec.LookPath(c)
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s: not found", c))
			continue
		}
		out, err := r.exec(path, "probe")
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s: %v", path, err))
			continue
		}
		if best == nil || found(out) > found(best) {
			best, r.exe = out, path
		}
	}
	if best == nil {
		missAll("no Python interpreter could run peers.py (" + strings.Join(tried, "; ") + ")")
		return r
	}
	info.Python, info.Version = best.Executable, best.Version
	for _, p := range Peers {
		if v := best.Probe[p]["version"]; v != "" {
			info.Versions[p] = v
		} else {
			info.Missing[p] = fmt.Sprintf("%s cannot import it (%s); install it with `%s`", best.Executable, best.Probe[p]["missing"], InstallPeers)
		}
	}
	return r
}

func found(o *peerOutput) int {
	n := 0
	for _, p := range Peers {
		if o.Probe[p]["version"] != "" {
			n++
		}
	}
	return n
}

func (r *peerRunner) enabled() bool { return r.exe != "" }

// run runs one scenario of peers.py; extra flags override the ones made
// from the options.
func (r *peerRunner) run(scenario string, extra ...string) (*peerOutput, error) {
	if !r.enabled() {
		return nil, nil
	}
	o := r.opts
	args := []string{"--workers", strconv.Itoa(o.Workers),
		"--n", strconv.Itoa(o.ThroughputN),
		"--latency-samples", strconv.Itoa(o.LatencySamples),
		"--starts", strconv.Itoa(o.WarmStarts),
		"--tasks", strconv.Itoa(killTasks),
		"--victim", strconv.Itoa(killVictim),
		"--hang-timeout", strconv.FormatFloat(o.HangTimeout.Seconds(), 'f', -1, 64),
		"--budget-mib", strconv.Itoa(o.MemoryBudgetMiB),
	}
	return r.exec(r.exe, scenario, append(args, extra...)...)
}

func (r *peerRunner) exec(exe, scenario string, args ...string) (*peerOutput, error) {
	out, stderr, err := runScript(20*time.Minute, exe, append([]string{r.script, "--only", scenario}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("peers.py %s: %v: %s", scenario, err, lastBytes(stderr, 2000))
	}
	var po peerOutput
	if err := json.Unmarshal(out, &po); err != nil {
		return nil, fmt.Errorf("peers.py %s: bad output: %v", scenario, err)
	}
	return &po, nil
}

// peers runs one scenario of peers.py. A failure is recorded under
// "<scenario>/peers" and does not fail the scenario.
func (b *bench) peers(scenario string, extra ...string) *peerOutput {
	if !b.peer.enabled() || b.res.Failures[scenario+"/peers"] != "" {
		return nil
	}
	b.opts.logf("%s: peers", scenario)
	out, err := b.peer.run(scenario, extra...)
	if err != nil {
		b.res.fail(scenario+"/peers", err)
		b.opts.logf("%s: peers FAILED: %v", scenario, err)
		return nil
	}
	return out
}

// missingPeers lists the peers that did not run, sorted.
func (p PeersInfo) missingPeers() []string {
	var m []string
	for k := range p.Missing {
		m = append(m, k)
	}
	slices.Sort(m)
	return m
}

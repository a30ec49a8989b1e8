package cluster

import (
	"encoding/json"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// disconnectAdvisories is where servers publish that a client of an
// account disconnected. A client sees them only when its account imports
// them from the system account: servers started by this package do that
// for every client (see Server.shareDisconnects); others need it in their
// configuration, as in
//
//	accounts: {
//	  SYS: {users: [...], exports: [{stream: "$SYS.ACCOUNT.APP.DISCONNECT"}]}
//	  APP: {users: [...], imports: [{stream: {account: SYS, subject: "$SYS.ACCOUNT.APP.DISCONNECT"}}]}
//	}
//	system_account: SYS
//
// Without them a pool learns that an agent is gone from its missing
// heartbeats only, in under a second (800 ms) instead of milliseconds.
const disconnectAdvisories = "$SYS.ACCOUNT.*.DISCONNECT"

// probePrefix names the connection a pool opens and closes at once to see
// whether the advisories reach it.
const probePrefix = "safepool-probe/"

// probeWait bounds the wait for the probe's advisory.
var probeWait atomic.Int64 // nanoseconds; 5 s unless a test sets it

func init() { probeWait.Store(int64(5 * time.Second)) }

// advisory is the part of a disconnect advisory the pool reads.
type advisory struct {
	Client struct {
		Name string `json:"name"`
	} `json:"client"`
	Reason string `json:"reason"`
}

// disconnected reports an agent whose connection closed.
func (c *coordinator) disconnected(m *nats.Msg) {
	var a advisory
	if err := json.Unmarshal(m.Data, &a); err != nil {
		return
	}
	if name, ok := strings.CutPrefix(a.Client.Name, probePrefix); ok {
		c.probeSeen(name)
		return
	}
	instance, ok := strings.CutPrefix(a.Client.Name, agentPrefix)
	if !ok || instance == "" {
		return
	}
	reason := a.Reason
	if reason == "" {
		reason = "connection closed"
	}
	c.h.AgentLost(instance, "disconnected: "+strings.ToLower(reason))
}

// probeAdvisories opens and closes a connection, and says once when its
// disconnect advisory did not come: the pool then relies on heartbeats.
func (c *coordinator) probeAdvisories() {
	defer close(c.probed)
	name := nuid.Next()
	c.probeMu.Lock()
	c.probeName, c.probeDone = name, make(chan struct{})
	done := c.probeDone
	c.probeMu.Unlock()
	probe, err := c.dial(probePrefix + name)
	if err != nil {
		return
	}
	probe.Close()
	select {
	case <-done:
		c.advisories.Store(true)
	case <-time.After(time.Duration(probeWait.Load())):
		if !c.nc.IsClosed() {
			c.opts.logf("warning: the NATS servers do not share client disconnect advisories with this account (%s): a pool sees that an agent is gone from its missing heartbeats only, in under a second; see the cluster package's documentation for the server configuration", disconnectAdvisories)
		}
	case <-c.closed:
	}
}

func (c *coordinator) probeSeen(name string) {
	c.probeMu.Lock()
	defer c.probeMu.Unlock()
	if name == c.probeName && c.probeDone != nil {
		close(c.probeDone)
		c.probeDone = nil
	}
}

// Package cluster runs safepool pools across machines, over NATS
// JetStream. A program imports it for its side effect,
//
//	import _ "github.com/safepool/safepool/cluster"
//
// and then sets pool.Config.Cluster to "embedded" (a server and an agent
// inside the program, for trying it out and for tests) or to the URLs of
// NATS servers, such as "nats://h1:4222,h2:4222" (agents run elsewhere,
// started with Serve or RunAgent, or 'safepool serve'). Programs that do
// not import it do not link NATS.
//
// # How messages move
//
// A pool publishes chunks of attempts to one work-queue stream,
// SAFEPOOL_TASKS (memory storage, one to three replicas), which every
// agent pulls from through one shared durable consumer, a few chunks at a
// time. An agent asks the chunk's pool for it (a claim, request and
// reply) before running it, and acknowledges the message whatever the
// answer: the pool, not the stream, is the record of outstanding
// attempts, because a work-queue stream deletes a message on any
// acknowledgement, a stale one included. Everything else is core NATS:
// Prepare and Stop go to every agent on safepool.ctl.*, and an agent's
// ready, results, heartbeats and releases go to
// safepool.to.POOL.{ready,results,hb,release}, which the pool reads on one
// subscription, in the order the agent sent them. Modules travel through
// the object store bucket safepool-objects, under the hex SHA-256 of their
// bytes, which an agent checks.
//
// # Agents that go away
//
// Agents name their connections "safepool-agent/INSTANCE". A pool
// subscribes to the servers' client disconnect advisories and reports an
// agent whose connection closed within milliseconds; servers started by
// this package share them with their clients, and other servers need the
// configuration shown at disconnectAdvisories. A pool whose servers do
// not share them says so once, and relies on heartbeats.
//
// # Servers
//
// StartServer and Serve run a server in this process. One that listens
// beyond loopback requires a token, a user and password, or nkeys. Servers
// given routes to each other form a cluster; the stream and the objects
// are then replicated on up to three of them.
package cluster

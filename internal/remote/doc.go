// Package remote is the seam between a pool and a cluster transport: the
// messages a coordinator (a pool whose Config.Cluster is set) and its agents
// exchange, their binary codecs, the interfaces a transport implements on
// each side, and the registry through which a transport (package cluster,
// over NATS JetStream) plugs in when it is imported.
//
// The pool owns the semantics: its record of outstanding attempts is the
// truth, a chunk of tasks runs only on the agent whose claim the pool
// granted, and every attempt is settled once. A transport only moves
// messages, and reports agents it saw go away.
package remote

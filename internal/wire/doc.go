// Package wire is the framed binary protocol between the pool (the host) and
// its worker processes.
//
// The protocol runs on two pipes that are not the guest's stdio: the host
// writes on one and the worker writes on the other. Every message is a frame:
//
//	u32 big-endian  length of what follows (type byte + payload)
//	u8              message type
//	payload         fields encoded with uvarints and length-prefixed bytes
//
// A session starts with a handshake. The host sends [Init] ([TypeInit]),
// which carries [Version]; the worker answers [Ready] ([TypeReady]) with its
// own version, the module's kind and an SDK module's handlers, or [Fatal]
// ([TypeFatal]). Then the host sends [TypeBatch] frames, each holding one or
// more [Task] values, and the worker answers with [TypeResults] frames of
// [Result] values, and, when Init.Events is set, a [TypeStarted] frame as
// each task starts. A frame may carry many tasks or results, so that a busy
// pool crosses the pipe once per batch, not once per task. The worker decodes
// each batch in place ([DecodeBatchInto]) and runs it before it reads the
// next frame.
//
// Every task runs under the session's timeout (Init.Timeout) and, unless it
// carries a cap of its own (Task.MemoryLimit, for a retry with more
// memory), under the session's memory cap. The host ends a session by
// closing the worker's input; no frame says so.
//
// The decoders reject malformed frames with an error wrapping [ErrMalformed]
// and never panic; FuzzDecode checks that.
package wire

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
// A session starts with a handshake. The host sends [Init], which carries
// [Version]; the worker answers [Ready] with its own version, or [Fatal]. Then
// the host sends [Batch] frames, each holding one or more tasks, and the
// worker answers with [Results] frames. A frame may carry many tasks or
// results, so that a busy pool crosses the pipe once per batch, not once per
// task.
//
// The decoders reject malformed frames with an error wrapping [ErrMalformed]
// and never panic; FuzzDecode checks that.
package wire

// Package tail keeps the last N bytes written to it.
package tail

import (
	"sync"
	"sync/atomic"
)

// Buffer is an io.Writer that keeps only the last Max bytes written, and
// counts the bytes it dropped. It is safe for concurrent use.
type Buffer struct {
	Max int

	mu      sync.Mutex
	buf     []byte
	dropped int64
	// used is set by Write and cleared by Reset, so that Bytes and Reset
	// of a buffer nobody wrote to (most tasks log nothing) take no lock.
	used atomic.Bool
}

// New returns a Buffer that keeps the last max bytes.
func New(max int) *Buffer { return &Buffer{Max: max} }

// Write keeps the tail of p. It never fails.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used.Store(true)
	n := len(p)
	if b.Max <= 0 {
		b.dropped += int64(n)
		return n, nil
	}
	if len(p) >= b.Max {
		b.dropped += int64(len(b.buf) + len(p) - b.Max)
		b.buf = append(b.buf[:0], p[len(p)-b.Max:]...)
		return n, nil
	}
	if over := len(b.buf) + len(p) - b.Max; over > 0 {
		b.dropped += int64(over)
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	b.buf = append(b.buf, p...)
	return n, nil
}

// Bytes returns a copy of the kept tail.
func (b *Buffer) Bytes() []byte {
	if !b.used.Load() {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf) == 0 {
		return nil
	}
	return append([]byte(nil), b.buf...)
}

// Dropped returns how many bytes were written but not kept.
func (b *Buffer) Dropped() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dropped
}

// Reset empties the buffer.
func (b *Buffer) Reset() {
	if !b.used.Load() {
		return
	}
	b.mu.Lock()
	b.buf = b.buf[:0]
	b.dropped = 0
	b.used.Store(false)
	b.mu.Unlock()
}

package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Version is the protocol version carried by the handshake. A worker refuses
// an [Init] whose version differs.
const Version = 6

// MaxFrame is the largest frame either side accepts, in bytes. A longer length
// prefix is treated as a corrupt stream.
const MaxFrame = 1 << 30

// Type identifies the message a frame carries.
type Type uint8

// Message types.
const (
	TypeInit    Type = 1 // host → worker: configuration, starts the handshake
	TypeReady   Type = 2 // worker → host: handshake answer
	TypeBatch   Type = 3 // host → worker: tasks to run in order
	TypeResults Type = 4 // worker → host: results, in the order the tasks ran
	TypeStarted Type = 5 // worker → host: a task started (only when Init.Events)
	TypeFatal   Type = 6 // worker → host: the worker cannot go on
	// TypeHostCall: worker → host, a guest calls a host function; the
	// worker waits for the TypeHostReply before it sends anything else.
	TypeHostCall  Type = 7
	TypeHostReply Type = 8 // host → worker: the host function's answer
)

func (t Type) String() string {
	switch t {
	case TypeInit:
		return "init"
	case TypeReady:
		return "ready"
	case TypeBatch:
		return "batch"
	case TypeResults:
		return "results"
	case TypeStarted:
		return "started"
	case TypeFatal:
		return "fatal"
	case TypeHostCall:
		return "host call"
	case TypeHostReply:
		return "host reply"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Errors returned by this package.
var (
	// ErrMalformed is wrapped by every decoding error.
	ErrMalformed = errors.New("wire: malformed frame")
	// ErrTooLarge is returned for a frame longer than MaxFrame.
	ErrTooLarge = errors.New("wire: frame too large")
)

// Reader reads frames from a stream. It is not safe for concurrent use.
type Reader struct {
	r   *bufio.Reader
	buf []byte
}

// NewReader returns a Reader that reads frames from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Read returns the next frame's type and payload. The payload is only valid
// until the next call to Read. At a clean end of stream it returns io.EOF; a
// stream cut inside a frame gives io.ErrUnexpectedEOF.
func (r *Reader) Read() (Type, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r.r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return 0, nil, fmt.Errorf("%w: empty frame", ErrMalformed)
	}
	if n > MaxFrame {
		return 0, nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, n)
	}
	b, err := r.readBody(int(n))
	if err != nil {
		return 0, nil, err
	}
	// Do not keep a huge buffer alive after a rare huge frame.
	if cap(r.buf) > 16<<20 {
		r.buf = nil
	}
	return Type(b[0]), b[1:], nil
}

// Writer writes frames to a stream. It is not safe for concurrent use.
type Writer struct {
	w   *bufio.Writer
	hdr [5]byte
}

// NewWriter returns a Writer that writes frames to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: bufio.NewWriterSize(w, 64<<10)}
}

// FrameSize is the number of bytes a frame with a payload of n bytes takes
// on the stream: a 4-byte length, the type byte, the payload.
func FrameSize(n int) int { return 5 + n }

// Write buffers one frame. Call Flush to send it.
func (w *Writer) Write(t Type, payload []byte) error {
	n := len(payload) + 1
	if n > MaxFrame {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, n)
	}
	binary.BigEndian.PutUint32(w.hdr[:4], uint32(n))
	w.hdr[4] = byte(t)
	if _, err := w.w.Write(w.hdr[:]); err != nil {
		return err
	}
	_, err := w.w.Write(payload)
	return err
}

// Flush sends every buffered frame.
func (w *Writer) Flush() error { return w.w.Flush() }

// Send writes one frame and flushes it.
func (w *Writer) Send(t Type, payload []byte) error {
	if err := w.Write(t, payload); err != nil {
		return err
	}
	return w.Flush()
}

// readBody reads n bytes. It grows the buffer as the bytes arrive rather than
// trusting the length prefix, so a corrupt prefix on a short stream cannot
// make it allocate a gigabyte.
func (r *Reader) readBody(n int) ([]byte, error) {
	const step = 1 << 20
	b := r.buf[:0]
	for len(b) < n {
		want := min(n-len(b), max(step, len(b)))
		if cap(b)-len(b) < want {
			nb := make([]byte, len(b), len(b)+want)
			copy(nb, b)
			b = nb
		}
		k, err := io.ReadFull(r.r, b[len(b):len(b)+want])
		b = b[:len(b)+k]
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	r.buf = b
	return b, nil
}

package proc

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPipeRoom(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	before := pipeRoom(w, pipeBufSize(w))
	require.Positive(t, before, "a fresh pipe has room")
	size := growPipe(w)
	require.Equal(t, pipeBufSize(w), size, "growPipe reports the size it left")
	grown := pipeRoom(w, size)
	assert.GreaterOrEqual(t, grown, before, "growing never shrinks the buffer")
	_, err = w.Write(make([]byte, 1000))
	require.NoError(t, err)
	assert.Equal(t, grown-1000, pipeRoom(w, size), "unread bytes take room")
	_, err = io.ReadFull(r, make([]byte, 1000))
	require.NoError(t, err)
	assert.Equal(t, grown, pipeRoom(w, size), "read bytes give it back")
}

func TestPipeRoomClosed(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	r.Close()
	w.Close()
	assert.Zero(t, pipeRoom(w, pipeSize), "a closed pipe has no room to offer")
	assert.Zero(t, pipeBufSize(w), "nor a size")
}

// TestSpinReader checks that a SpinReader returns the same bytes as the
// pipe, whether they come while it polls, after it has given up polling and
// parked, or not at all (EOF), and that it stops polling after long waits.
func TestSpinReader(t *testing.T) {
	for _, yield := range []bool{false, true} {
		t.Run(fmt.Sprintf("yield=%v", yield), func(t *testing.T) { testSpinReader(t, yield) })
	}
}

func testSpinReader(t *testing.T, yield bool) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	s := NewSpinReader(r, 200*time.Microsecond, yield)
	buf := make([]byte, 16)

	_, err = w.Write([]byte("ready"))
	require.NoError(t, err)
	n, err := s.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, "ready", string(buf[:n]))

	// Bytes that come after the polling budget: the reader parks and is
	// woken by the poller.
	go func() {
		time.Sleep(20 * time.Millisecond)
		_, _ = w.Write([]byte("late"))
	}()
	n, err = s.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, "late", string(buf[:n]))

	// With polling off a read parks at once and still gets its bytes.
	s.SetSpin(false)
	go func() {
		time.Sleep(5 * time.Millisecond)
		_, _ = w.Write([]byte("parked"))
	}()
	n, err = s.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, "parked", string(buf[:n]))

	n, err = s.Read(nil)
	assert.NoError(t, err)
	assert.Zero(t, n)

	w.Close()
	_, err = s.Read(buf)
	assert.ErrorIs(t, err, io.EOF)
}

// TestSpinReaderStream reads a long stream through small reads, as a frame
// reader does, so that every read polls.
func TestSpinReaderStream(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<14)
	go func() {
		for b := want; len(b) > 0; {
			n := min(len(b), 1000)
			_, _ = w.Write(b[:n])
			b = b[n:]
		}
		w.Close()
	}()
	got, err := io.ReadAll(NewSpinReader(r, 100*time.Microsecond, false))
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

func TestSpinReaderClosedUnder(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer w.Close()
	s := NewSpinReader(r, 0, false)
	done := make(chan error, 1)
	go func() {
		_, err := s.Read(make([]byte, 8))
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	r.Close()
	select {
	case err := <-done:
		assert.Error(t, err, "closing the pipe ends a parked read with an error")
	case <-time.After(5 * time.Second):
		t.Fatal("a parked read did not end when its pipe was closed")
	}
}

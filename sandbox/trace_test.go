package sandbox_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/engine"
	"github.com/safepool/safepool/internal/enginetest"
	"github.com/safepool/safepool/internal/hostconn"
	"github.com/safepool/safepool/internal/proc"
	"github.com/safepool/safepool/internal/testguest"
	"github.com/safepool/safepool/internal/wire"
)

// TestWorkerTrace: with proc.TraceEnv set on the host, a worker writes a
// runtime/trace of its life into that directory, named by its pid, with a
// region for its batch and one for the guest's call.
func TestWorkerTrace(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(proc.TraceEnv, dir)
	// The cache is filled first: a Go guest compiled cold by a worker under
	// -race on a busy machine can outlast the start timeout.
	wk := enginetest.StartWorker(t, wire.Init{
		Engine: engine.Wazero, ModulePath: testguest.Path(t, "tasks"), CacheDir: enginetest.CacheDir(t),
		MemoryLimit: 64 << 20, OutputLimit: 1 << 10,
	})
	require.NoError(t, wk.Send([]wire.Task{{ID: 1, Func: "square", Input: []byte("7")}}))
	ev := wk.Recv()
	require.Len(t, ev.Results, 1)
	require.Equal(t, wire.StatusOK, ev.Results[0].Status, ev.Results[0].Error)
	require.Equal(t, "49", string(ev.Results[0].Output))
	wk.Stop() // the worker stops its trace when its input closes
	<-wk.Exited()
	wk.Release()

	data, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("worker-%d.trace", wk.PID())))
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(data, []byte("go 1.")), "a runtime/trace file starts with its Go version")
	// The regions' names are in the trace's string table, each a varint
	// length and its bytes.
	require.True(t, bytes.Contains(data, []byte("\x05batch")), "the batch region is in the trace")
	require.True(t, bytes.Contains(data, []byte("\x05guest")), "the guest call's region is in the trace")
}

// TestWorkerTraceBadDir: a trace directory the worker cannot write to
// fails its start, with the variable's name and what to do.
func TestWorkerTraceBadDir(t *testing.T) {
	t.Setenv(proc.TraceEnv, filepath.Join(t.TempDir(), "missing"))
	_, err := hostconn.Start(hostconn.Config{Init: wire.Init{ModulePath: testguest.Path(t, "wsquare"), MemoryLimit: 64 << 20}})
	require.ErrorIs(t, err, hostconn.ErrStart)
	require.ErrorContains(t, err, proc.TraceEnv+": cannot write the worker's trace")
	require.ErrorContains(t, err, "set it to a writable directory, or unset it")
}

package remote

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRoundTrip(t *testing.T) {
	a := Agent{Name: "a1", Host: "h", Instance: "i-1", Workers: 2}
	spec := Spec{Pool: "p", Module: "abc", ModuleSize: 9, Name: "m.wasm", Engine: "wazero", MemoryLimit: 64 << 20,
		Timeout: time.Second, StartTimeout: 30 * time.Second, OutputLimit: 1, LogLimit: 2, FreshInstance: true,
		BatchSize: 256, MinAvailable: 5, GateTimeout: time.Minute, Events: true,
		Env: []string{"A=1"}, Args: []string{"x", "y"}, Dirs: []Dir{{HostPath: "/srv", GuestPath: "/data", Writable: true}}}
	c := &Chunk{ID: 7, Spec: spec, Tasks: []Task{{ID: 1, Func: "square", Input: []byte("3")}, {ID: 2, InputRef: "in-2", MemoryLimit: 1 << 20, Gate: true}}}
	got, err := UnmarshalChunk(MarshalChunk(c))
	require.NoError(t, err)
	require.Equal(t, c, got)

	s, err := UnmarshalSpec(MarshalSpec(&spec))
	require.NoError(t, err)
	require.Equal(t, &spec, s)

	cl := &Claim{Pool: "p", Chunk: 7, Agent: a}
	gcl, err := UnmarshalClaim(MarshalClaim(cl))
	require.NoError(t, err)
	require.Equal(t, cl, gcl)

	r := &Ready{Pool: "p", Agent: a, Kind: 1, Handlers: []string{"square", "fail"}, Err: "x", ModuleErr: true}
	gr, err := UnmarshalReady(MarshalReady(r))
	require.NoError(t, err)
	require.Equal(t, r, gr)

	rs := &Results{Pool: "p", Agent: a, Results: []Result{{ID: 1, Status: 1, Output: []byte("9"), Start: 1, End: 2, WorkerPID: 3, PeakMemory: 4, MemoryLimit: 5},
		{ID: 2, Status: 3, OutputRef: "o", Error: "e", Log: []byte("l"), Died: true, Signal: "SIGKILL", ExitCode: -1, Hung: true, GateFailed: "g"}}}
	grs, err := UnmarshalResults(MarshalResults(rs))
	require.NoError(t, err)
	require.Equal(t, rs, grs)

	h := &Heartbeat{Agent: a, Seq: 9, Holding: []Holding{{Pool: "p", Chunks: []uint64{1, 2}, Running: []uint64{5}}}}
	gh, err := UnmarshalHeartbeat(MarshalHeartbeat(h))
	require.NoError(t, err)
	require.Equal(t, h, gh)

	rel := &Release{Pool: "p", Agent: a, IDs: []uint64{3, 4}, Why: "closing"}
	grel, err := UnmarshalRelease(MarshalRelease(rel))
	require.NoError(t, err)
	require.Equal(t, rel, grel)

	st := &Stop{Pool: "p", All: true, Chunks: []uint64{8}}
	gst, err := UnmarshalStop(MarshalStop(st))
	require.NoError(t, err)
	require.Equal(t, st, gst)
}

func TestRefusesOtherVersionsAndTypes(t *testing.T) {
	b := MarshalStop(&Stop{Pool: "p"})
	b[0] = Version + 1
	_, err := UnmarshalStop(b)
	require.ErrorIs(t, err, ErrMalformed)
	require.ErrorContains(t, err, "same safepool release")
	_, err = UnmarshalClaim(MarshalStop(&Stop{Pool: "p"}))
	require.ErrorIs(t, err, ErrMalformed)
	_, err = UnmarshalChunk(nil)
	require.ErrorIs(t, err, ErrMalformed)
	tr := append(MarshalStop(&Stop{Pool: "p"}), 0)
	_, err = UnmarshalStop(tr)
	require.ErrorIs(t, err, ErrMalformed)
}

// FuzzDecode feeds every decoder arbitrary bytes: an error, never a panic.
func FuzzDecode(f *testing.F) {
	f.Add(MarshalChunk(&Chunk{ID: 1, Tasks: []Task{{ID: 1, Input: []byte("x")}}}))
	f.Add(MarshalResults(&Results{Results: []Result{{ID: 1, Status: 1}}}))
	f.Add(MarshalHeartbeat(&Heartbeat{Holding: []Holding{{Pool: "p", Chunks: []uint64{1}}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, typ := range []byte{typeChunk, typeClaim, typeReady, typeResults, typeHeartbeat, typeRelease, typeStop, typeSpec} {
			if len(b) >= 2 {
				b[1] = typ
			}
			_, _ = UnmarshalChunk(b)
			_, _ = UnmarshalClaim(b)
			_, _ = UnmarshalReady(b)
			_, _ = UnmarshalResults(b)
			_, _ = UnmarshalHeartbeat(b)
			_, _ = UnmarshalRelease(b)
			_, _ = UnmarshalStop(b)
			_, _ = UnmarshalSpec(b)
		}
	})
}

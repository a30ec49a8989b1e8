package wire_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/wire"
)

// FuzzDecode feeds arbitrary bytes to the frame reader and every decoder. The
// first byte picks the decoder. Decoding must never panic, and whatever
// decodes must encode back to the same bytes.
//
// The seed corpus in testdata/fuzz/FuzzDecode runs with every `go test`; run
// the fuzzer with `go test -fuzz=FuzzDecode ./internal/wire`.
func FuzzDecode(f *testing.F) {
	f.Add(append([]byte{byte(wire.TypeBatch)}, wire.AppendBatch(nil, []wire.Task{{ID: 1, Func: "square", Input: []byte("7")}})...))
	f.Add(append([]byte{byte(wire.TypeResults)}, wire.AppendResults(nil, []wire.Result{{ID: 1, Status: wire.StatusOK, Output: []byte("49")}})...))
	f.Add(append([]byte{byte(wire.TypeInit)}, wire.AppendInit(nil, &wire.Init{Version: wire.Version, ModulePath: "/x", Timeout: 5e6, StartTimeout: 1e9})...))
	f.Add(append([]byte{byte(wire.TypeReady)}, wire.AppendReady(nil, &wire.Ready{Version: 1, Kind: wire.KindCommand, Handlers: []string{"a"}})...))
	f.Fuzz(func(t *testing.T, data []byte) {
		// The frame reader on the raw bytes.
		r := wire.NewReader(bytes.NewReader(data))
		for range 4 {
			if _, _, err := r.Read(); err != nil {
				break
			}
		}
		if len(data) == 0 {
			return
		}
		p := data[1:]
		switch wire.Type(data[0] % 8) {
		case wire.TypeInit:
			if m, err := wire.DecodeInit(p); err == nil {
				again, err := wire.DecodeInit(wire.AppendInit(nil, m))
				require.NoError(t, err)
				require.Equal(t, m, again)
			}
		case wire.TypeReady:
			if m, err := wire.DecodeReady(p); err == nil {
				again, err := wire.DecodeReady(wire.AppendReady(nil, m))
				require.NoError(t, err)
				require.Equal(t, m, again)
			}
		case wire.TypeBatch:
			if m, err := wire.DecodeBatchInto(nil, p); err == nil {
				again, err := wire.DecodeBatchInto(nil, wire.AppendBatch(nil, m))
				require.NoError(t, err)
				require.Equal(t, m, again)
			}
		case wire.TypeResults:
			if m, err := wire.DecodeResults(p); err == nil {
				again, err := wire.DecodeResults(wire.AppendResults(nil, m))
				require.NoError(t, err)
				require.Equal(t, m, again)
			}
		case wire.TypeStarted:
			_, _ = wire.DecodeStarted(p)
		case wire.TypeFatal:
			if m, err := wire.DecodeFatal(p); err == nil {
				again, err := wire.DecodeFatal(wire.AppendFatal(nil, m))
				require.NoError(t, err)
				require.Equal(t, m, again)
			}
		}
	})
}

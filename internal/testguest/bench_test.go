package testguest_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero/api"
)

// These measure one task through the ABI in an in-process runtime, without
// the test helpers in the loop: safepool_alloc, copying the name and input
// in, the call, and the host copying the result out.

var benchCases = []struct{ module, fn, in string }{
	{"tasks", "square", "7"},
	{"tasks", "echo", "7"},
	{"wsquare", "square", "7"},
}

func BenchmarkCall(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.module+"/"+bc.fn, func(b *testing.B) {
			in := loadSDK(b, bc.module, hostOptions{})
			alloc, call := in.fn("safepool_alloc"), in.fn("safepool_call")
			task := []byte(bc.fn + bc.in)
			stack := make([]uint64, 4)
			for b.Loop() {
				stack[0] = uint64(len(task))
				if err := alloc.CallWithStack(in.ctx, stack); err != nil {
					b.Fatal(err)
				}
				ptr := api.DecodeU32(stack[0])
				in.mod.Memory().Write(ptr, task)
				stack[0], stack[1], stack[2], stack[3] = uint64(ptr), uint64(len(bc.fn)), uint64(ptr)+uint64(len(bc.fn)), uint64(len(bc.in))
				in.got = in.got[:0]
				if err := call.CallWithStack(in.ctx, stack); err != nil {
					b.Fatal(err)
				}
			}
			require.Len(b, in.got, 1)
			require.Equal(b, uint32(statusOK), in.got[0].Status)
		})
	}
}

func BenchmarkBatch(b *testing.B) {
	const size = 1000
	for _, bc := range benchCases {
		b.Run(bc.module+"/"+bc.fn, func(b *testing.B) {
			in := loadSDK(b, bc.module, hostOptions{})
			tasks := make([]task, size)
			for i := range tasks {
				tasks[i] = task{bc.fn, bc.in}
			}
			for b.Loop() {
				got, err := in.batch(tasks...)
				if err != nil || len(got) != size {
					b.Fatalf("batch: %v, %d results", err, len(got))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/task")
		})
	}
}

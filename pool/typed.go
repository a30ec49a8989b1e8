package pool

import (
	"context"
	"encoding/json"
	"fmt"
)

// Typed is a Result with its output decoded from JSON. Value is the zero
// value unless Status is StatusOK.
type Typed[T any] struct {
	Result
	Value T
}

// MapJSON encodes each input as JSON, runs fn on it, and decodes each
// output into Out. An output that does not decode turns that result into
// StatusError with the decoding error; it does not fail the map.
//
//	rs, err := pool.MapJSON[int, int](ctx, p, "square", []int{1, 2, 3})
//	for _, r := range rs {
//		if r.Status == pool.StatusOK {
//			fmt.Println(r.Value)
//		}
//	}
//
// # Errors
//
// An input that does not encode fails the map before any task runs;
// otherwise the errors are those of Map.
func MapJSON[In, Out any](ctx context.Context, p *Pool, fn string, inputs []In) ([]Typed[Out], error) {
	raw := make([][]byte, len(inputs))
	for i, in := range inputs {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("pool: encode input %d: %w", i, err)
		}
		raw[i] = b
	}
	rs, err := p.Map(ctx, fn, raw)
	out := make([]Typed[Out], len(rs))
	for i, r := range rs {
		out[i] = decodeTyped[Out](r)
	}
	return out, err
}

// ApplyJSON is Apply with JSON encoding of the input and decoding of the
// output.
func ApplyJSON[In, Out any](ctx context.Context, p *Pool, fn string, input In) (Typed[Out], error) {
	b, err := json.Marshal(input)
	if err != nil {
		return Typed[Out]{}, fmt.Errorf("pool: encode input: %w", err)
	}
	r, err := p.Apply(ctx, fn, b)
	return decodeTyped[Out](r), err
}

func decodeTyped[Out any](r Result) Typed[Out] {
	t := Typed[Out]{Result: r}
	if r.Status == StatusOK {
		if err := json.Unmarshal(r.Output, &t.Value); err != nil {
			t.Status = StatusError
			t.Error = fmt.Sprintf("decode output as %T: %v", t.Value, err)
		}
	}
	return t
}

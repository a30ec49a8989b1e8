package pool_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/pool"
)

type ctxKey struct{}

// Every task event names its map (Event.Map) and carries the context the
// map was called with (Event.Context): through a real SIGKILL and its
// retry, across maps, and for the tasks a cancelled map never ran.
func TestEventsNameTheirMapAndContext(t *testing.T) {
	var mu sync.Mutex
	var evs []pool.Event
	k := newKiller(2)
	k.fn = "slow_square"
	p := newPool(t, "tasks", func(c *pool.Config) {
		c.Workers = 2
		c.KillPolicy = pool.Retry
		c.OnEvent = k.onEvent
		c.Observer = func(e pool.Event) {
			mu.Lock()
			evs = append(evs, e)
			mu.Unlock()
		}
	})
	ctxA := context.WithValue(context.Background(), ctxKey{}, "a")
	ctxB := context.WithValue(context.Background(), ctxKey{}, "b")

	rs, err := p.Map(ctxA, "slow_square", ints(5))
	require.NoError(t, err)
	require.Equal(t, 2, rs[2].Attempts, "task 2 was killed once and retried")
	_, err = p.Map(ctxB, "square", ints(3))
	require.NoError(t, err)
	// A third map, cancelled before its long tasks end: the tasks it never
	// ran are reported as not run, under its number.
	h, err := p.MapAsync(ctxB, "sleep", [][]byte{[]byte("60000"), []byte("60000"), []byte("60000")})
	require.NoError(t, err)
	require.Equal(t, uint64(3), h.ID(), "the pool's third map")
	h.Cancel()
	_, err = h.Wait(context.Background())
	require.Error(t, err)

	// A task's final event comes just after its result was delivered, so
	// it can come after its map returned.
	eventually(t, 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, e := range evs {
			if e.Kind == pool.EventTaskFinal {
				n++
			}
		}
		return n == 5+3
	}, "every task's final event")
	mu.Lock()
	defer mu.Unlock()
	byKind := map[pool.EventKind]int{}
	for _, e := range evs {
		switch e.Kind {
		case pool.EventTaskEnd, pool.EventTaskFinal, pool.EventRetry, pool.EventNotRun:
			byKind[e.Kind]++
			want := map[string]uint64{"slow_square": 1, "square": 2, "sleep": 3}[e.Func]
			require.Equal(t, want, e.Map, "%s of %s task %d", e.Kind, e.Func, e.Index)
			wantCtx := map[uint64]string{1: "a", 2: "b", 3: "b"}[e.Map]
			require.Equal(t, wantCtx, e.Context().Value(ctxKey{}), "%s of map %d", e.Kind, e.Map)
		default:
			require.Zero(t, e.Map, "%s is no task's", e.Kind)
			require.Nil(t, e.Context().Value(ctxKey{}), "%s", e.Kind)
			require.NotNil(t, e.Context())
		}
	}
	require.Equal(t, 1, byKind[pool.EventRetry], "the killed task's retry")
	require.Equal(t, 5+3, byKind[pool.EventTaskFinal])
	require.GreaterOrEqual(t, byKind[pool.EventNotRun], 1, "the cancelled map's tasks")
	require.GreaterOrEqual(t, byKind[pool.EventTaskEnd], 5+1+3)
}

// captured is a slog.Handler that keeps each record's message, attributes
// and the value its context holds under ctxKey.
type captured struct {
	mu   sync.Mutex
	recs []capturedRecord
}

type capturedRecord struct {
	msg   string
	attrs map[string]string
	ctx   any
}

func (h *captured) Enabled(context.Context, slog.Level) bool { return true }
func (h *captured) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *captured) WithGroup(string) slog.Handler            { return h }
func (h *captured) Handle(ctx context.Context, r slog.Record) error {
	c := capturedRecord{msg: r.Message, attrs: map[string]string{}, ctx: ctx.Value(ctxKey{})}
	r.Attrs(func(a slog.Attr) bool {
		c.attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	h.recs = append(h.recs, c)
	h.mu.Unlock()
	return nil
}

// A task's log records name its map and are logged under the map's
// context, where a handler finds the caller's values (a trace bridge's
// span, say); a worker's records are logged under none.
func TestLogRecordsCarryTheirMap(t *testing.T) {
	h := &captured{}
	k := newKiller(1)
	k.fn = "slow_square"
	p := newPool(t, "tasks", func(c *pool.Config) {
		c.Workers = 2
		c.KillPolicy = pool.Retry
		c.OnEvent = k.onEvent
		c.Logger = slog.New(h)
	})
	_, err := p.Map(context.Background(), "square", ints(2)) // map 1
	require.NoError(t, err)
	ctx := context.WithValue(context.Background(), ctxKey{}, "caller's")
	rs, err := p.Map(ctx, "slow_square", ints(3)) // map 2; task 1 killed once
	require.NoError(t, err)
	require.Equal(t, 2, rs[1].Attempts)

	eventually(t, 5*time.Second, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		n := 0
		for _, r := range h.recs {
			if r.msg == "task done" {
				n++
			}
		}
		return n == 2+3
	}, "every task's final record")
	h.mu.Lock()
	defer h.mu.Unlock()
	msgs := map[string]int{}
	for _, r := range h.recs {
		if _, task := r.attrs["index"]; !task {
			require.Nil(t, r.ctx, "%q is no task's", r.msg)
			continue
		}
		msgs[r.msg]++
		switch r.attrs["func"] {
		case "square":
			require.Equal(t, "1", r.attrs["map"], r.msg)
			require.Nil(t, r.ctx, r.msg)
		case "slow_square":
			require.Equal(t, "2", r.attrs["map"], r.msg)
			require.Equal(t, "caller's", r.ctx, r.msg)
		}
	}
	require.Equal(t, 1, msgs["attempt failed"], "the kill")
	require.Equal(t, 1, msgs["task will be retried"])
	require.Equal(t, 2+3, msgs["task done"])
}

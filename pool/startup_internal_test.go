package pool

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/hostconn"
	"github.com/safepool/safepool/internal/wire"
)

// TestMayBeCache: the start-up failures that may come from a damaged cache
// entry are told apart by type and code, never by message text.
func TestMayBeCache(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"instantiate failed", fmt.Errorf("%w: %w", hostconn.ErrStart, &wire.Fatal{Code: wire.FatalInstantiate, Message: "anything"}), true},
		{"crash without a word", fmt.Errorf("%w: EOF; worker exited with code 2", hostconn.ErrStart), true},
		{"the module's own failure", fmt.Errorf("%w: %w", hostconn.ErrStart, &wire.Fatal{Code: wire.FatalModule, Message: "instantiate module"}), false},
		{"a kill from outside", fmt.Errorf("%w: %w: killed", hostconn.ErrStart, hostconn.ErrKilledAtStart), false},
		{"the start timeout", fmt.Errorf("%w: %w", hostconn.ErrStart, hostconn.ErrStartTimeout), false},
	} {
		t.Run(c.name, func(t *testing.T) { require.Equal(t, c.want, mayBeCache(c.err)) })
	}
}

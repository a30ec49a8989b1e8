package pool_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A program that imports only the pool links none of the optional
// packages' dependencies: NATS (cluster), the Prometheus client (metrics),
// OpenTelemetry (tracing), wasmtime-go. Neither does the lean worker.
func TestPoolLinksNoOptionalDependency(t *testing.T) {
	for _, pkg := range []string{"github.com/safepool/safepool/pool", "github.com/safepool/safepool/cmd/safepool-worker"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		require.NoError(t, err, "%s", out)
		deps := strings.Fields(string(out))
		require.Contains(t, deps, "github.com/tetratelabs/wazero", "the list is %s's dependencies", pkg)
		for _, d := range deps {
			for _, optional := range []string{"github.com/nats-io/", "github.com/prometheus/", "go.opentelemetry.io/", "github.com/bytecodealliance/"} {
				require.False(t, strings.HasPrefix(d, optional), "%s links %s", pkg, d)
			}
		}
	}
}

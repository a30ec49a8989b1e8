package pool_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	_ "github.com/safepool/safepool/cluster" // the "embedded" transport
	"github.com/safepool/safepool/pool"
)

// The suites again, on Config.Cluster = "embedded": an in-process
// JetStream server and agent whose workers are this process's children,
// so that the killers' SIGKILLs (sent to the WorkerPID of the task-start
// events the agent forwards) and the chaos monkey's reach them. Several
// maps share a pool in the kills-and-two-maps test and in the chaos, which
// also streams (ImapUnordered); runChaos checks that Terminate reaps every
// worker. (TestCancelSparesOtherMaps counts the local driver's
// worker-exit events, which agents do not forward.)
func TestEmbedded(t *testing.T) {
	clusterTarget = "embedded"
	t.Cleanup(func() { clusterTarget = "" })
	t.Run("seed", TestSeed)
	t.Run("several kills and two maps", TestSeveralKillsAndTwoMaps)
	t.Run("imap", TestImap)
	t.Run("imap with kills", TestImapWithKills)
	t.Run("events name their map", TestEventsNameTheirMapAndContext)
	t.Run("tally after a kill", TestTallyAfterKill)
	t.Run("tally matches records", TestTallyMatchesRecords)
	t.Run("chaos", func(t *testing.T) {
		for _, policy := range []pool.Policy{pool.Retry, pool.Skip, pool.Abort} {
			t.Run(policy.String(), func(t *testing.T) {
				var fig figures
				for _, events := range []bool{true, false} {
					runChaos(t, "wchaos", policy, events, time.Second, &fig)
				}
				t.Logf("%s: %s", policy, &fig)
				require.Zero(t, fig.hangs.Load(), "hangs")
				require.Zero(t, fig.lost.Load(), "lost results")
				require.Zero(t, fig.doubled.Load(), "doubled results")
				require.NotZero(t, fig.kills(), "the monkey killed nothing: the test tested nothing")
			})
		}
	})
}

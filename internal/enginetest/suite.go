package enginetest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/safepool/safepool/internal/engine"
	_ "github.com/safepool/safepool/sandbox" // its init turns re-executed test binaries into workers
)

// A case is one conformance check on the engine called eng.
type testCase struct {
	name string
	run  func(t *testing.T, eng string)
}

// workerCases drive one worker process each, through internal/hostconn, as a
// pool does.
var workerCases = []testCase{
	{"Square10000", square10000},
	{"Statuses", statuses},
	{"MemoryLimitThenOK", memoryLimitThenOK},
	{"Timeout", timeouts},
	{"TimeoutIsPerTaskInABatch", timeoutIsPerTaskInABatch},
	{"KillWhileRunning", killWhileRunning},
	{"BatchEntryPoint", batchEntryPoint},
	{"NoResult", noResult},
	{"Traps", traps},
	{"GuestOutputIsBounded", guestOutputIsBounded},
	{"DenyByDefault", denyByDefault},
	{"GrantEnvArgs", grantEnvArgs},
	{"GrantDirs", grantDirs},
	{"GrantCommand", grantCommand},
	{"HostCalls", hostCalls},
	{"CGuest", cGuest},
	{"FreshInstance", freshInstance},
	{"CommandModule", commandModule},
	{"BadModulesFailAtStart", badModulesFailAtStart},
	{"DamagedCacheRecovers", damagedCacheRecovers},
	{"ResultsAreIDMatched", resultsAreIDMatched},
	{"ErrorsAreOneLine", errorsAreOneLine},
	{"MemoryLimitSizes", memoryLimitSizes},
	{"FatalFirstLine", fatalFirstLine},
	{"TaskTimeoutSparesStartUp", taskTimeoutSparesStartUp},
	{"StartTimeout", startTimeout},
	{"MemoryNeededAtStart", memoryNeededAtStart},
	{"InitializeNeedsMoreMemory", initializeNeedsMoreMemory},
}

// poolCases go through pool.New and the pool's API.
var poolCases = []testCase{
	{"PoolStatuses", poolStatuses},
	{"PoolMemoryRetry", poolMemoryRetry},
	{"PoolKills", poolKills},
	{"PoolCommandModule", poolCommandModule},
	{"PoolBadStart", poolBadStart},
	{"PoolGrantDirs", poolGrantDirs},
}

// Run runs the whole suite, Worker's cases and Pool's, on the engine
// called eng, each as a subtest.
func Run(t *testing.T, eng string) {
	Worker(t, eng)
	Pool(t, eng)
}

// Worker runs the worker-level cases on the engine called eng: statuses,
// memory caps, timeouts, traps, kills, batches, start-up and the
// compilation cache, each against a real worker process.
func Worker(t *testing.T, eng string) { runCases(t, eng, workerCases) }

// Pool runs the pool-level cases on the engine called eng: statuses,
// retries with a larger cap, kills under skip and retry, command modules,
// bad modules and directory grants, through pool.New.
func Pool(t *testing.T, eng string) { runCases(t, eng, poolCases) }

func runCases(t *testing.T, eng string, cases []testCase) {
	require.NoError(t, engine.Check(eng), "the engine must be registered in the test binary")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, eng) })
	}
}

package agent

import (
	"os"
	"runtime/debug"
)

// GCPercent is the garbage collector's target (GOGC) of a process whose
// work is an agent, unless its environment sets GOGC. An agent is long
// lived and allocates little once its jobs run: it mostly waits on them.
// Go's default of 100 lets the heap grow to twice what is live before a
// collection, which for an agent following 1,000 SageMaker jobs is about
// 10 MB of garbage. At 50 the same agent's anonymous memory is a quarter
// lower for the same CPU (about 2 % of a core either way in the footprint
// benchmark; see BENCHMARKS.md); at 10,000 jobs a fifth lower for more
// CPU (38 % of a core against 27 %), which GOGC=100 trades back.
const GCPercent = 50

// TuneGC sets the garbage collector's target to GCPercent unless the
// environment sets GOGC. Call it once, first thing, in a process whose
// main work is an agent.
func TuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(GCPercent)
	}
}

package agent_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/bench"
)

// BenchmarkThroughput measures jobs claimed and finished per second by 1,
// 4 and 16 agents with a no-op runner, over the HTTP API, on SQLite and,
// when SLIPWAY_TEST_POSTGRES names a database, on PostgreSQL: b.N jobs per
// run, enqueued before the agents start. `slipway bench` runs the same
// code (internal/bench).
func BenchmarkThroughput(b *testing.B) {
	dsns := map[string]string{"sqlite": ""}
	if pg := os.Getenv("SLIPWAY_TEST_POSTGRES"); pg != "" {
		dsns["postgres"] = pg
	}
	for _, store := range []string{"sqlite", "postgres"} {
		dsn, ok := dsns[store]
		if !ok {
			continue
		}
		for _, agents := range []int{1, 4, 16} {
			b.Run(fmt.Sprintf("%s/agents=%d", store, agents), func(b *testing.B) {
				r, err := bench.Throughput(context.Background(), bench.ThroughputConfig{DSN: dsn, Agents: agents, Jobs: max(b.N, agents)}, bench.Options{})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(r.JobsPerSecond, "jobs/s")
				b.ReportMetric(float64(r.CPUPerJob)/float64(time.Microsecond), "cpu-µs/job")
			})
		}
	}
}

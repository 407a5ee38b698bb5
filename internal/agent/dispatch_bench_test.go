package agent_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/bench"
	"github.com/slipway-ml/slipway/internal/dockertest"
)

// BenchmarkDispatch measures enqueue → CreateTrainingJob received by the
// local AWS endpoint, with an idle agent on a sagemaker queue: b.N jobs,
// one at a time, reported as p50 and p99 in ms.
func BenchmarkDispatch(b *testing.B) {
	dockertest.Client(b) // skips without an engine, fails under SLIPWAY_REQUIRE_DOCKER=1
	d, err := bench.MeasureDispatch(context.Background(), b.N, bench.Options{})
	if err != nil {
		b.Fatal(err)
	}
	reportMS(b, d.ToCreate, "")
	reportMS(b, d.ToClaim, "claim-")
}

func reportMS(b *testing.B, lat []time.Duration, prefix string) {
	if len(lat) == 0 {
		return
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	b.ReportMetric(float64(s[len(s)/2].Microseconds())/1000, prefix+"p50-ms")
	b.ReportMetric(float64(s[(len(s)*99-1)/100].Microseconds())/1000, prefix+"p99-ms")
}

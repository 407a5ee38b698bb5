package sagemaker_test

import (
	"context"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/bench"
)

// BenchmarkTrackJobs measures an agent following b.N SageMaker training
// jobs (at least 10) that stay InProgress on bench's stand-in endpoint,
// with the runner's default polling: its resident memory (the agent runs
// in a process of its own, this test binary started again; see TestMain)
// and its
// DescribeTrainingJob and DescribeLogStreams calls per job per minute over
// a short window. `slipway bench` runs the same code at 1,000 jobs over a
// minute (10,000 with --full).
func BenchmarkTrackJobs(b *testing.B) {
	f, err := bench.MeasureFootprint(context.Background(), bench.FootprintConfig{Jobs: max(b.N, 10), Window: 3 * time.Second}, bench.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(f.TrackingMB, "rss-MB")
	b.ReportMetric(f.TrackingAnonMB, "anon-MB")
	b.ReportMetric(float64(f.Goroutines), "goroutines")
	b.ReportMetric((f.TrackingMB-f.IdleMB)*1024/float64(f.Jobs), "KB/job")
	b.ReportMetric(f.PerJobPerMinute("DescribeTrainingJob"), "describe/job/min")
	b.ReportMetric(f.PerJobPerMinute("DescribeLogStreams"), "logstreams/job/min")
}

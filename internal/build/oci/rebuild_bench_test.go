package oci_test

import (
	"context"
	"testing"

	"github.com/slipway-ml/slipway/internal/bench"
)

// BenchmarkRebuild measures the oci builder against a local registry:
// b.N relaunches of unchanged code (skipped by content tag, nothing
// uploaded) and one build after a one-file change (only the code layer
// and the config uploaded).
func BenchmarkRebuild(b *testing.B) {

	r, err := bench.MeasureRebuild(context.Background(), "oci", b.N, 1)
	if err != nil {
		b.Fatal(err)
	}
	if r.UnchangedBlobs != 0 {
		b.Errorf("unchanged relaunches uploaded %d blobs, want 0", r.UnchangedBlobs)
	}
	var total float64
	for _, d := range r.Unchanged {
		total += float64(d.Microseconds()) / 1000
	}
	b.ReportMetric(total/float64(len(r.Unchanged)), "unchanged-ms")
	b.ReportMetric(float64(r.Changed[0].Microseconds())/1000, "changed-ms")
	b.ReportMetric(float64(r.ChangedBlobs[0]), "changed-blobs")
}

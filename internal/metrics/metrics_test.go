package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/metrics"
	"github.com/slipway-ml/slipway/internal/store/sqlite"
)

// body scrapes h and returns the text it serves.
func body(t *testing.T, m *metrics.Metrics, depth metrics.QueueLister) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler(depth).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestObserveKeepsOnlyWhatCounts(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	now := time.Now()
	m.ObserveClaim("q", now.Add(-2*time.Second), now)
	m.ObserveClaim("q", now, now.Add(-time.Second)) // clock went back: ignored
	m.ObserveClaim("q", time.Time{}, now)           // no enqueue time: ignored
	m.ObserveOutcome("q", job.Running)              // not an outcome
	m.ObserveOutcome("q", job.Failed)
	m.ObserveBuild("oci", time.Second, true, nil)
	m.ObserveBuild("", time.Second, false, errors.New("no registry"))
	var nilM *metrics.Metrics
	nilM.ObserveOutcome("q", job.Failed) // a nil *Metrics records nothing and does not panic

	got := body(t, m, nil)
	for _, want := range []string{
		`slipway_claim_latency_seconds_count{queue="q"} 1`,
		`slipway_job_outcomes_total{queue="q",state="failed"} 1`,
		`slipway_build_cache_hits_total{builder="oci"} 1`,
		`slipway_build_duration_seconds_count{builder="oci",result="cached"} 1`,
		`slipway_build_duration_seconds_count{builder="unknown",result="error"} 1`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("scrape: missing %q; got:\n%s", want, got)
		}
	}
	if strings.Contains(got, `state="running"`) {
		t.Errorf("scrape: got a running outcome, want none:\n%s", got)
	}
}

func TestStoreDepthCountsUnfinishedJobsPerQueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, q := range []string{"busy", "idle"} {
		if _, err := st.CreateQueue(ctx, job.Queue{Name: q, Resource: job.LocalProcess}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, err := st.Enqueue(ctx, job.Job{ID: job.NewID("j-"), Queue: "busy", Spec: job.Spec{Entrypoint: []string{"true"}}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	got := body(t, metrics.New(), metrics.StoreDepth{Store: st})
	for _, want := range []string{
		`slipway_queue_jobs{queue="busy",state="queued"} 2`,
		`slipway_queue_jobs{queue="busy",state="running"} 0`,
		`slipway_queue_jobs{queue="idle",state="queued"} 0`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("scrape: missing %q; got:\n%s", want, got)
		}
	}
	if strings.Contains(got, `state="finished"`) {
		t.Errorf("scrape: got a depth for an ended state, want none:\n%s", got)
	}
}

// Package metrics is Slipway's Prometheus instrumentation: queue depth
// (computed from the store at scrape time), claim latency, job outcomes,
// AWS API calls and throttles, and image build durations and cache hits.
//
// The counters and histograms belong to the process, not to a server or an
// agent: Default holds them, so that in `slipway up`, where the server and
// the agent share one process, the server's /metrics shows both. Handler
// adds a store's queue depth to what Default gathers.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/slipway-ml/slipway/internal/job"
)

// Metrics are one registry's counters and histograms. Its methods are safe
// for concurrent use, and a nil *Metrics records nothing.
type Metrics struct {
	reg          *prometheus.Registry
	claimLatency *prometheus.HistogramVec
	outcomes     *prometheus.CounterVec
	awsCalls     *prometheus.CounterVec
	awsThrottles *prometheus.CounterVec
	buildSeconds *prometheus.HistogramVec
	buildCached  *prometheus.CounterVec
}

// Default is the process's metrics, with the Go runtime's and the
// process's own collectors beside Slipway's.
var Default = newDefault()

func newDefault() *Metrics {
	m := New()
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// New returns metrics on a registry of their own; tests use it to count
// apart from the rest of the process.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		claimLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "slipway_claim_latency_seconds",
			Help:    "Time from a job's enqueue (or its return to the queue) to its claim by an agent.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600},
		}, []string{"queue"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_job_outcomes_total",
			Help: "Jobs that reached a terminal state, by queue and state.",
		}, []string{"queue", "state"}),
		awsCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_aws_api_calls_total",
			Help: "AWS API requests sent by the SageMaker runner (each retry counts), by service and operation.",
		}, []string{"service", "operation"}),
		awsThrottles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_aws_api_throttles_total",
			Help: "AWS API requests answered with a throttling error, by service and operation.",
		}, []string{"service", "operation"}),
		buildSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "slipway_build_duration_seconds",
			Help:    "Time to build and push a job's image (or find it built), by builder and result.",
			Buckets: []float64{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800},
		}, []string{"builder", "result"}),
		buildCached: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_build_cache_hits_total",
			Help: "Builds skipped because the image of the code's content tag was already in the registry.",
		}, []string{"builder"}),
	}
	m.reg.MustRegister(m.claimLatency, m.outcomes, m.awsCalls, m.awsThrottles, m.buildSeconds, m.buildCached)
	return m
}

// Gatherer returns m's registry.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// ObserveClaim records how long a just-claimed job waited in its queue:
// from its last change before the claim (its enqueue, or its return to the
// queue) to the claim. queuedAt is that change's time; claimedAt the claim's.
func (m *Metrics) ObserveClaim(queue string, queuedAt, claimedAt time.Time) {
	if m == nil || queuedAt.IsZero() || claimedAt.Before(queuedAt) {
		return
	}
	m.claimLatency.WithLabelValues(queue).Observe(claimedAt.Sub(queuedAt).Seconds())
}

// ObserveOutcome counts a job that reached state; states that are not
// terminal are ignored.
func (m *Metrics) ObserveOutcome(queue string, state job.State) {
	if m == nil || !state.Terminal() {
		return
	}
	m.outcomes.WithLabelValues(queue, string(state)).Inc()
}

// ObserveBuild records one build: its builder, how long it took, whether
// the image was already there (a cache hit) and whether it failed.
func (m *Metrics) ObserveBuild(builder string, took time.Duration, cached bool, err error) {
	if m == nil {
		return
	}
	if builder == "" {
		builder = "unknown"
	}
	result := "built"
	switch {
	case err != nil:
		result = "error"
	case cached:
		result = "cached"
		m.buildCached.WithLabelValues(builder).Inc()
	}
	m.buildSeconds.WithLabelValues(builder, result).Observe(took.Seconds())
}

// QueueLister is the part of the store queue depth is read from.
type QueueLister interface {
	// CountJobs returns how many jobs each queue holds in each state.
	CountJobs(ctx context.Context) (map[string]map[job.State]int, error)
}

// Handler serves m's metrics in the Prometheus text format, with the queue
// depth of depth when it is not nil, computed at each scrape.
func (m *Metrics) Handler(depth QueueLister) http.Handler {
	g := prometheus.Gatherers{m.reg}
	if depth != nil {
		r := prometheus.NewRegistry()
		r.MustRegister(depthCollector{src: depth})
		g = append(g, r)
	}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

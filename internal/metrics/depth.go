package metrics

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// scrapeTimeout bounds the store reads of one scrape.
const scrapeTimeout = 10 * time.Second

var depthDesc = prometheus.NewDesc("slipway_queue_jobs",
	"Jobs not yet ended, by queue and state, read from the store at scrape time.",
	[]string{"queue", "state"}, nil)

// depthCollector reads queue depth at each scrape, so it is never stale and
// costs nothing between scrapes.
type depthCollector struct{ src QueueLister }

func (c depthCollector) Describe(ch chan<- *prometheus.Desc) { ch <- depthDesc }

func (c depthCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	counts, err := c.src.CountJobs(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(depthDesc, err)
		return
	}
	for queue, byState := range counts {
		for state, n := range byState {
			ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(n), queue, string(state))
		}
	}
}

// StoreDepth counts a store's unfinished jobs for queue depth: every queue
// has a series for each state from queued to running, zeros included, so
// that a queue that empties reads 0 rather than vanishing. Ended jobs are
// not counted here: slipway_job_outcomes_total counts them as they end.
type StoreDepth struct {
	Store interface {
		store.Queues
		store.Jobs
	}
}

// CountJobs implements QueueLister.
func (d StoreDepth) CountJobs(ctx context.Context) (map[string]map[job.State]int, error) {
	qs, err := d.Store.ListQueues(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing queues: %w", err)
	}
	counts := make(map[string]map[job.State]int, len(qs))
	for _, q := range qs {
		counts[q.Name] = map[job.State]int{}
		for _, st := range job.States {
			if !st.Terminal() {
				counts[q.Name][st] = 0
			}
		}
	}
	found, err := d.Store.CountUnfinished(ctx)
	if err != nil {
		return nil, fmt.Errorf("counting jobs: %w", err)
	}
	for queue, byState := range found {
		for st, n := range byState {
			store.AddCount(counts, queue, st, n)
		}
	}
	return counts, nil
}

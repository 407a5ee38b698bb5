package server_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/server"
)

// BenchmarkEnqueueToClaim measures dispatch latency through the real HTTP
// API and SQLite: an idle agent's claim is already waiting when the job is
// enqueued; the clock runs from the enqueue call to the claim's answer.
func BenchmarkEnqueueToClaim(b *testing.B) {
	c := setupBench(b)
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		got := make(chan time.Time, 1)
		ready := make(chan struct{})
		go func() {
			close(ready)
			cl, err := c.Claim(ctx, api.Claim{Agent: "bench", Queues: []string{"q"}, Wait: 10 * time.Second})
			if err != nil {
				b.Error(err)
			}
			got <- time.Now()
			_, _ = c.Transition(ctx, cl.Job.ID, api.Transition{Token: cl.Job.Lease.Token, To: job.Failed, Reason: "bench"})
		}()
		<-ready
		time.Sleep(time.Millisecond) // let the claim reach the server and wait
		start := time.Now()
		if _, err := c.Enqueue(ctx, shellJob("q")); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, (<-got).Sub(start))
	}
	reportPercentiles(b, lat)
}

// BenchmarkClaimThroughput measures jobs claimed and ended per second by
// four concurrent claimers over HTTP, with the queue kept full.
func BenchmarkClaimThroughput(b *testing.B) {
	c := setupBench(b)
	ctx := context.Background()
	for range b.N {
		if _, err := c.Enqueue(ctx, shellJob("q")); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				cl, err := c.Claim(ctx, api.Claim{Agent: "bench", Queues: []string{"q"}})
				if err != nil {
					return // ErrNoJob: the queue is drained
				}
				if _, err := c.Transition(ctx, cl.Job.ID, api.Transition{Token: cl.Job.Lease.Token, To: job.Finished, Reason: "bench"}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
}

func setupBench(b *testing.B) *client.Client {
	c := setup(b, server.Config{})
	mustQueue(b, c, "q", job.LocalProcess)
	return c
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

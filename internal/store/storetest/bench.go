package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// The benchmarks below measure one store's share of running jobs; each
// driver's tests call them on a store of its own with an empty queue "q".

var priorities = []job.Priority{job.Low, job.Medium, job.High, job.Critical}

// BenchEnqueue measures enqueueing one job, from parallel goroutines when
// parallelism is above 0 (as many clients of one server do: their writes may
// share commits), else one after another.
func BenchEnqueue(b *testing.B, s store.Store, parallelism int) {
	ctx := context.Background()
	spec := job.Spec{Image: "example/train:1", Args: []string{"--lr", "0.1"}}
	enqueue := func(i int) error {
		_, err := s.Enqueue(ctx, job.Job{ID: job.NewID("j"), Queue: "q", Priority: priorities[i%len(priorities)], Spec: spec}, nil)
		return err
	}
	b.ReportAllocs()
	if parallelism == 0 {
		for i := 0; b.Loop(); i++ {
			if err := enqueue(i); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	b.SetParallelism(parallelism)
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			if err := enqueue(i); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchClaim measures one claim and the transition that ends the job, the
// store's share of running a job, on a queue of b.N jobs: from parallel
// goroutines (agents) when parallelism is above 0, else one after another.
func BenchClaim(b *testing.B, s store.Store, parallelism int) {
	ctx := context.Background()
	spec := job.Spec{Image: "example/train:1"}
	for i := range b.N {
		if _, err := s.Enqueue(ctx, job.Job{ID: fmt.Sprintf("j%d", i), Queue: "q", Priority: priorities[i%len(priorities)], Spec: spec}, nil); err != nil {
			b.Fatal(err)
		}
	}
	req := store.ClaimRequest{Agent: "agent", Queues: []string{"q"}, TTL: time.Minute}
	run := func() error {
		j, err := s.Claim(ctx, req)
		if err != nil {
			return err
		}
		_, err = s.Transition(ctx, store.Update{JobID: j.ID, Token: j.Lease.Token, To: job.Finished})
		return err
	}
	b.ReportAllocs()
	b.ResetTimer()
	if parallelism == 0 {
		for range b.N {
			if err := run(); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	b.SetParallelism(parallelism)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := run(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

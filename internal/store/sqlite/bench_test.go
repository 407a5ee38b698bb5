package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// BenchmarkMoves measures the store's CPU per job for one agent that
// claims batch jobs at a time and moves them through three states, one
// Transitions of batch updates per state: what StoreThroughput does with
// 16 agents, without the luck of how their writes share commits.
func BenchmarkMoves(b *testing.B) {
	for _, batch := range []int{1, 8} {
		b.Run(fmt.Sprint("batch=", batch), func(b *testing.B) {
			ctx := context.Background()
			s := open(b, filepath.Join(b.TempDir(), "moves.db"))
			b.Cleanup(func() { _ = s.Close() })
			if _, err := s.CreateQueue(ctx, job.Queue{Name: "q", Resource: job.LocalProcess}); err != nil {
				b.Fatal(err)
			}
			for i := range b.N * batch {
				if _, err := s.Enqueue(ctx, job.Job{ID: fmt.Sprintf("j%d", i), Queue: "q", Spec: job.Spec{Image: "example/train:1"}}, nil); err != nil {
					b.Fatal(err)
				}
			}
			req := store.ClaimRequest{Agent: "agent", Queues: []string{"q"}, TTL: time.Minute}
			cpu0 := cpu(b)
			b.ResetTimer()
			for range b.N {
				js, err := s.ClaimN(ctx, req, batch)
				if err != nil {
					b.Fatal(err)
				}
				us := make([]store.Update, len(js))
				for _, to := range []job.State{job.Submitting, job.Starting, job.Finished} {
					for i, j := range js {
						us[i] = store.Update{JobID: j.ID, Token: j.Lease.Token, To: to, Reason: "bench", ExternalID: j.ID}
					}
					ms, err := s.Transitions(ctx, us)
					if err != nil {
						b.Fatal(err)
					}
					for _, m := range ms {
						if m.Err != nil {
							b.Fatal(m.Err)
						}
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(cpu(b)-cpu0)/float64(time.Microsecond)/float64(b.N*batch), "cpu-µs/job")
		})
	}
}

// cpu is the CPU time, user and system, this process has used.
func cpu(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

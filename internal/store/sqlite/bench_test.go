package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
			cpu0, user0, w0 := cpu(b), userCPU(b), writeCalls(b)
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
			jobs := float64(b.N * batch)
			b.ReportMetric(float64(cpu(b)-cpu0)/float64(time.Microsecond)/jobs, "cpu-µs/job")
			// User time alone: the system time is mostly the fsyncs', which
			// the other load on the disk moves more than the store does.
			b.ReportMetric(float64(userCPU(b)-user0)/float64(time.Microsecond)/jobs, "user-µs/job")
			if w0 >= 0 {
				// Write calls: two per WAL frame, one per page a commit changed.
				b.ReportMetric(float64(writeCalls(b)-w0)/jobs, "writes/job")
			}
		})
	}
}

// userCPU is the user CPU time this process has used.
func userCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano())
}

// writeCalls counts the write system calls this process has made (Linux's
// /proc/self/io), or is -1 where it cannot tell.
func writeCalls(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// cpu is the CPU time, user and system, this process has used.
func cpu(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

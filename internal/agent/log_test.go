package agent_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/agent"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
	"github.com/slipway-ml/slipway/internal/server"
)

// syncBuffer is a bytes.Buffer that a logger may write from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestEachMoveIsLoggedWithTheJob checks that an agent whose logger takes
// Info lines logs each move of a job with the job's attributes: the line
// is made only when something logs it.
func TestEachMoveIsLoggedWithTheJob(t *testing.T) {
	t.Parallel()
	e := setup(t, server.Config{})
	e.queue("q", job.LocalProcess)
	var buf syncBuffer
	ag, err := agent.New(agent.Config{
		Client: e.c, Queues: []string{"q"}, MaxJobs: 1, ClaimWait: 2 * time.Second,
		Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Runner: func(job.Queue) (runner.Runner, error) { return newProcess(t), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { _ = ag.Run(ctx); close(done) }()
	j := e.waitEnd(e.launch("q", sh("true"), job.Medium).ID)
	cancel()
	<-done // the job has let go, after its last move's answer
	for _, st := range []job.State{job.Submitting, job.Starting, job.Finished} {
		want := `msg="job moved" job=` + j.ID + " queue=q attempt=1 state=" + string(st)
		if !strings.Contains(buf.String(), want) {
			t.Errorf("the agent's log has no line %q; got:\n%s", want, buf.String())
		}
	}
}

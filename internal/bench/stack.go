package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/slipway-ml/slipway/internal/agent"
	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
	"github.com/slipway-ml/slipway/internal/server"
	"github.com/slipway-ml/slipway/internal/store"
	"github.com/slipway-ml/slipway/internal/store/postgres"
	"github.com/slipway-ml/slipway/internal/store/sqlite"
)

// stack is a Slipway server on a store, served over loopback HTTP, and a
// client to it: what `slipway up` runs, in this process.
type stack struct {
	Store  store.Store
	Client *client.Client
	URL    string
	close  func()
}

// startStack opens the store (a temporary SQLite file when dsn is empty,
// else a PostgreSQL DSN) and serves a server on it until Close.
func startStack(ctx context.Context, dsn string, log *slog.Logger) (*stack, error) {
	st, cleanup, err := openStore(ctx, dsn)
	if err != nil {
		return nil, err
	}
	srv, err := server.New(server.Config{Store: st, Logger: log})
	if err != nil {
		st.Close()
		cleanup()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		st.Close()
		cleanup()
		return nil, fmt.Errorf("listening: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ran := make(chan struct{})
	go func() { _ = srv.Run(runCtx); close(ran) }()
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() { _ = hs.Serve(ln); close(served) }()
	url := "http://" + ln.Addr().String()
	c, err := client.New(url)
	if err != nil {
		cancel()
		return nil, err
	}
	return &stack{Store: st, Client: c, URL: url, close: func() {
		srv.Drain()
		shut, stop := context.WithTimeout(context.Background(), 5*time.Second)
		_ = hs.Shutdown(shut)
		stop()
		_ = hs.Close()
		<-served
		cancel()
		<-ran
		st.Close()
		cleanup()
	}}, nil
}

// openStore opens a temporary SQLite file when dsn is empty, else the
// PostgreSQL database dsn names; cleanup removes what it made, once the
// store is closed.
func openStore(ctx context.Context, dsn string) (st store.Store, cleanup func(), err error) {
	cleanup = func() {}
	if dsn == "" {
		dir, derr := os.MkdirTemp("", "slipway-bench-")
		if derr != nil {
			return nil, nil, fmt.Errorf("making a temporary dir: %w", derr)
		}
		cleanup = func() { _ = os.RemoveAll(dir) }
		st, err = sqlite.Open(ctx, filepath.Join(dir, "bench.db"))
	} else {
		st, err = postgres.Open(ctx, dsn)
	}
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("opening the store: %w", err)
	}
	return st, cleanup, nil
}

// Close stops the server and removes what it made.
func (s *stack) Close() { s.close() }

// queue creates a queue.
func (s *stack) queue(ctx context.Context, q api.CreateQueue) error {
	if _, err := s.Client.CreateQueue(ctx, q); err != nil {
		return fmt.Errorf("creating queue %s: %w", q.Name, err)
	}
	return nil
}

// agents runs n agents on queue with run as their runner until the
// returned stop is called; stop waits for them to return.
func (s *stack) agents(ctx context.Context, n int, queue string, maxJobs int, log *slog.Logger,
	run func(job.Queue) (runner.Runner, error)) (stop func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{}, n)
	for i := range n {
		// Each agent gets its own client, as separate processes would.
		c, err := client.New(s.URL)
		if err != nil {
			cancel()
			return nil, err
		}
		a, err := agent.New(agent.Config{Client: c, Queues: []string{queue}, Runner: run, MaxJobs: maxJobs,
			Name: fmt.Sprintf("bench-%d", i), ClaimWait: 5 * time.Second, Logger: log})
		if err != nil {
			cancel()
			return nil, fmt.Errorf("starting agent: %w", err)
		}
		go func() {
			if err := a.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("agent ended", "err", err)
			}
			done <- struct{}{}
		}()
	}
	return func() {
		cancel()
		for range n {
			<-done
		}
	}, nil
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/agent"
	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/server"
	"github.com/slipway-ml/slipway/internal/store"
)

// defaultAddr is where `slipway server` and `slipway up` listen.
const defaultAddr = "127.0.0.1:7070"

func (a *app) serverCmd() *cobra.Command {
	var addr, dsn string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Slipway server: the HTTP API that keeps queues, jobs and leases",
		Example: `  slipway server                                  # 127.0.0.1:7070, SQLite under ~/.local/share/slipway
  slipway server --addr 0.0.0.0:7070 --db /var/lib/slipway/slipway.db`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := openStore(ctx, dsn)
			if err != nil {
				return err
			}
			defer st.Close()
			srv, err := startServer(ctx, addr, st, slog.Default())
			if err != nil {
				return err
			}
			slog.Info("slipway server listening", "url", srv.url, "db", dsn)
			return srv.wait()
		},
	}
	cmd.Flags().StringVar(&addr, "addr", defaultAddr, "address to listen on, HOST:PORT")
	cmd.Flags().StringVar(&dsn, "db", defaultDSN(), "database: a SQLite file path or sqlite://PATH")
	return cmd
}

// runningServer is a server serving on a listener until its context ends.
type runningServer struct {
	url  string
	done chan error
}

// startServer listens on addr and serves the API on st until ctx ends.
func startServer(ctx context.Context, addr string, st store.Store, log *slog.Logger) (*runningServer, error) {
	srv, err := server.New(server.Config{Store: st, Logger: log})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	rs := &runningServer{url: "http://" + ln.Addr().String(), done: make(chan error, 1)}
	go func() { _ = srv.Run(ctx) }()
	go func() {
		<-ctx.Done()
		// Long polls end with the listener; give other requests a moment to finish.
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(shutdownCtx)
	}()
	go func() {
		err := hs.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		rs.done <- err
	}()
	return rs, nil
}

func (rs *runningServer) wait() error { return <-rs.done }

func (a *app) agentCmd() *cobra.Command {
	var (
		queues  []string
		maxJobs int
		name    string
	)
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run an agent: claim jobs from queues, run them, report their states and logs",
		Example: `  slipway agent -q gpu-queue
  slipway agent --server http://slipway.internal:7070 -q q1 -q q2 --max-jobs 4`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			return runAgent(cmd.Context(), c, queues, maxJobs, name)
		},
	}
	cmd.Flags().StringArrayVarP(&queues, "queue", "q", nil, "queue to serve (repeat for several; served round-robin)")
	cmd.Flags().IntVar(&maxJobs, "max-jobs", 1, "jobs to run at once; -1 for no limit")
	cmd.Flags().StringVar(&name, "name", "", "agent name shown to users (default: the host name)")
	return cmd
}

func runAgent(ctx context.Context, c *client.Client, queues []string, maxJobs int, name string) error {
	rs := newRunners(slog.Default())
	ag, err := agent.New(agent.Config{Client: c, Queues: queues, MaxJobs: maxJobs, Name: name, Runner: rs.forQueue})
	if err != nil {
		return err
	}
	return ag.Run(ctx)
}

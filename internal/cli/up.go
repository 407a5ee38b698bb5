package cli

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/store"
)

func (a *app) upCmd() *cobra.Command {
	var addr, dsn string
	var maxJobs int
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the server and an agent serving every queue, in one process, on SQLite",
		Long: `Run the single-machine stack: the server on the embedded SQLite store and one
agent serving every queue, in one process. Stop it with Ctrl-C.`,
		Example: `  slipway up
  slipway up --addr 127.0.0.1:8080 --db ./slipway.db --max-jobs 4`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := openStore(ctx, dsn)
			if err != nil {
				return err
			}
			defer st.Close()
			s, err := startStack(ctx, addr, st, maxJobs)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "slipway is up at %s (db %s); Ctrl-C to stop\n", s.url, dsn)
			return s.wait()
		},
	}
	cmd.Flags().StringVar(&addr, "addr", defaultAddr, "address to listen on, HOST:PORT")
	cmd.Flags().StringVar(&dsn, "db", defaultDSN(), "database: a SQLite file path or sqlite://PATH")
	cmd.Flags().IntVar(&maxJobs, "max-jobs", 1, "jobs the agent runs at once; -1 for no limit")
	return cmd
}

// stack is a server and an agent serving every queue, in this process.
type stack struct {
	*runningServer
	client   *client.Client
	agentErr chan error
}

func startStack(ctx context.Context, addr string, st store.Store, maxJobs int) (*stack, error) {
	srv, err := startServer(ctx, addr, st, slog.Default())
	if err != nil {
		return nil, err
	}
	c, err := client.New(srv.url)
	if err != nil {
		return nil, err
	}
	s := &stack{runningServer: srv, client: c, agentErr: make(chan error, 1)}
	go func() { s.agentErr <- runAgent(ctx, c, []string{api.AllQueues}, maxJobs, "") }()
	return s, nil
}

// wait returns when both the server and the agent have stopped.
func (s *stack) wait() error {
	serr := s.runningServer.wait()
	aerr := <-s.agentErr
	if serr != nil {
		return serr
	}
	return aerr
}

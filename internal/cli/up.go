package cli

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/config"
	"github.com/slipway-ml/slipway/internal/localaws"
	"github.com/slipway-ml/slipway/internal/store"
)

func (a *app) upCmd() *cobra.Command {
	var (
		addr, dsn      string
		af             agentFlags
		withLocalAWS   bool
		localAWSData   string
		localAWSAddr   string
		secretsKeyPath string
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the server and an agent serving every queue, in one process, on SQLite",
		Long: `Run the single-machine stack: the server on the embedded SQLite store and one
agent serving every queue, in one process. Stop it with Ctrl-C.

With --local-aws it also serves the local AWS endpoint (see slipway local-aws)
and points the agent's AWS clients at it: sagemaker queues then run their
training jobs as containers on the local Docker engine, for free.`,
		Example: `  slipway up
  slipway up --addr 127.0.0.1:8080 --db ./slipway.db --max-jobs 4
  slipway up --local-aws -c agent.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cfg, err := af.settings(cmd)
			if err != nil {
				return err
			}
			if withLocalAWS {
				url, _, err := startLocalAWS(ctx, localAWSAddr, localaws.Config{DataDir: localAWSData, Logger: a.log, Region: "us-east-1"})
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stderr, "local AWS endpoint at %s\n", url)
			}
			st, err := openStore(ctx, dsn)
			if err != nil {
				return err
			}
			defer st.Close()
			token, saved, err := a.localAdminToken(ctx, st)
			if err != nil {
				return err
			}
			sec := security{auth: true, secretsKeyPath: secretsKeyPath}
			if err := sec.loadSecretsKey(dsn); err != nil {
				return err
			}
			s, err := startStackWith(ctx, addr, st, cfg, token, sec, a.log)
			if err != nil {
				return err
			}
			if saved != "" {
				fmt.Fprintf(a.stderr, "a local admin token is saved in %s; every slipway command here sends it\n", saved)
			} else if a.token == "" {
				fmt.Fprintf(a.stderr, "admin token (shown once): %s\n", token)
			}
			fmt.Fprintf(a.stderr, "slipway is up at %s (db %s); Ctrl-C to stop\n", s.url, dsn)
			return s.wait()
		},
	}
	cmd.Flags().StringVar(&addr, "addr", defaultAddr, "address to listen on, HOST:PORT")
	cmd.Flags().StringVar(&dsn, "db", defaultDSN(), "database: a SQLite file path, sqlite://PATH, or postgres://USER:PASSWORD@HOST/DB")
	cmd.Flags().StringVar(&secretsKeyPath, "secrets-key", "", "file of the 32-byte key that seals jobs' secret values, created (0600) when missing (default: the database path + .secrets-key)")
	cmd.Flags().BoolVar(&withLocalAWS, "local-aws", false, "also serve the local AWS endpoint and run sagemaker queues on it")
	cmd.Flags().StringVar(&localAWSAddr, "local-aws-addr", localaws.DefaultAddr, "the local AWS endpoint's address, HOST:PORT")
	cmd.Flags().StringVar(&localAWSData, "local-aws-data", "", "the local AWS endpoint's folder (default: slipway/local-aws in the user cache folder)")
	af.register(cmd, false)
	return cmd
}

// stack is a server and an agent serving every queue, in this process.
type stack struct {
	*runningServer
	client   *client.Client
	agentErr chan error
}

// startStack serves the API on st and runs one agent for every queue, with
// cfg's environment, registry, builder and max_jobs.
//
// Both log to the default logger as it is now, so that a later
// slog.SetDefault does not reach into a running stack.
func startStack(ctx context.Context, addr string, st store.Store, cfg *config.Agent, log *slog.Logger) (*stack, error) {
	return startStackAuth(ctx, addr, st, cfg, "", log)
}

// startStackAuth is startStack with the server requiring tokens when
// token, an admin token of st, is not empty; the stack's agent sends it.
func startStackAuth(ctx context.Context, addr string, st store.Store, cfg *config.Agent, token string, log *slog.Logger) (*stack, error) {
	return startStackWith(ctx, addr, st, cfg, token, security{auth: token != ""}, log)
}

// startStackWith is startStackAuth with the server's security settings.
func startStackWith(ctx context.Context, addr string, st store.Store, cfg *config.Agent, token string, sec security, log *slog.Logger) (*stack, error) {
	srv, err := startServerWith(ctx, addr, st, log, serverOptions{drain: defaultDrain, security: sec})
	if err != nil {
		return nil, err
	}
	c, err := client.New(srv.url, client.WithToken(token))
	if err != nil {
		return nil, err
	}
	s := &stack{runningServer: srv, client: c, agentErr: make(chan error, 1)}
	all := *cfg
	all.Queues = []string{api.AllQueues}
	go func() { s.agentErr <- runAgent(ctx, c, &all, "", 0, log) }()
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

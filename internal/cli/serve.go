package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/agent"
	slipclient "github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/config"
	"github.com/slipway-ml/slipway/internal/preflight"
	"github.com/slipway-ml/slipway/internal/server"
	"github.com/slipway-ml/slipway/internal/store"
)

// defaultAddr is where `slipway server` and `slipway up` listen.
const defaultAddr = "127.0.0.1:7070"

func (a *app) serverCmd() *cobra.Command {
	var addr, dsn string
	var opts serverOptions
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Slipway server: the HTTP API that keeps queues, jobs and leases",
		Example: `  slipway server                                  # 127.0.0.1:7070, SQLite under ~/.local/share/slipway
  slipway server --addr 0.0.0.0:7070 --db /var/lib/slipway/slipway.db`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := opts.loadSecretsKey(dsn); err != nil {
				return err
			}
			st, err := openStore(ctx, dsn)
			if err != nil {
				return err
			}
			defer st.Close()
			srv, err := startServerWith(ctx, addr, st, a.log, opts)
			if err != nil {
				return err
			}
			a.log.Info("slipway server listening", "url", srv.url, "db", redactDSN(dsn))
			return srv.wait()
		},
	}
	cmd.Flags().DurationVar(&opts.drain, "shutdown-grace", defaultDrain,
		"on SIGTERM or SIGINT: how long requests in flight get to finish (long polls answer at once); leases are kept")
	cmd.Flags().DurationVar(&opts.leaseTTL, "lease-ttl", 0, "how long an agent's claim lasts unless renewed (default 30s)")
	cmd.Flags().StringVar(&addr, "addr", defaultAddr, "address to listen on, HOST:PORT")
	cmd.Flags().StringVar(&dsn, "db", defaultDSN(), "database: a SQLite file path, sqlite://PATH, or postgres://USER:PASSWORD@HOST/DB")
	opts.registerSecurity(cmd)
	return cmd
}

// runningServer is a server serving on a listener until its context ends.
type runningServer struct {
	url  string
	done chan error
}

// defaultDrain is how long a stopping server lets requests finish.
const defaultDrain = 10 * time.Second

// serverOptions are the server's tunables beyond its address and store.
type serverOptions struct {
	drain    time.Duration // how long requests in flight get once ctx ends
	leaseTTL time.Duration // 0: the server's default
	security
}

// startServer listens on addr and serves the API on st until ctx ends.
func startServer(ctx context.Context, addr string, st store.Store, log *slog.Logger) (*runningServer, error) {
	return startServerWith(ctx, addr, st, log, serverOptions{drain: defaultDrain})
}

// startServerWith is startServer with options. When ctx ends the server
// stops taking connections, answers its long polls at once, gives the
// requests in flight up to opts.drain to finish, and stops its lease
// reaper: it takes back no lease on the way down, so that agents keep
// their jobs across a server restart.
func startServerWith(ctx context.Context, addr string, st store.Store, log *slog.Logger, opts serverOptions) (*runningServer, error) {
	if opts.drain < 0 || opts.leaseTTL < 0 {
		return nil, usageErr("--shutdown-grace and --lease-ttl: want durations of 0 or more")
	}
	if err := opts.security.validate(); err != nil {
		return nil, err
	}
	srv, err := server.New(server.Config{Store: st, Logger: log, LeaseTTL: opts.leaseTTL, Auth: opts.auth, SecretsKey: opts.secretsKey})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	// The HTTP server's own complaints (a TLS handshake a client broke off,
	// say) go to the server's log, not the process-wide one.
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelInfo)}
	rs := &runningServer{url: opts.scheme() + "://" + ln.Addr().String(), done: make(chan error, 1)}
	reaped := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(reaped) }()
	shutDown := make(chan struct{})
	go func() {
		defer close(shutDown)
		<-ctx.Done()
		srv.Drain()
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.drain)
		defer cancel()
		if err := hs.Shutdown(shutdownCtx); err != nil {
			log.Warn("requests still in flight at the end of the shutdown grace; closing them", "grace", opts.drain)
			_ = hs.Close()
		}
		<-reaped
	}()
	go func() {
		err := opts.serve(hs, ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		// The store closes after this returns: let every request end first.
		if ctx.Err() != nil {
			<-shutDown
		}
		rs.done <- err
	}()
	return rs, nil
}

func (rs *runningServer) wait() error { return <-rs.done }

// agentFlags are the flags that shape an agent, shared by `agent` and `up`.
type agentFlags struct {
	configPath string
	queues     []string
	maxJobs    int
	name       string
	grace      time.Duration
}

func (f *agentFlags) register(cmd *cobra.Command, withQueues bool) {
	fl := cmd.Flags()
	fl.StringVarP(&f.configPath, "config", "c", "", "agent config YAML (environment, registry, builder, queues, max_jobs)")
	fl.IntVar(&f.maxJobs, "max-jobs", 1, "jobs to run at once; -1 for no limit (overrides the config's max_jobs)")
	if withQueues {
		fl.StringArrayVarP(&f.queues, "queue", "q", nil, "queue to serve (repeat for several; served round-robin; overrides the config's queues)")
		fl.StringVar(&f.name, "name", "", "agent name shown to users (default: the host name)")
		fl.DurationVar(&f.grace, "shutdown-grace", 0, "on SIGTERM or SIGINT: how long local jobs get to finish before they are handed over; "+
			"SageMaker jobs are handed over at once, their training jobs running on for the next agent to re-attach")
	}
}

// settings merges the config file (if any) with the flags, flags winning
// where the user set them.
func (f *agentFlags) settings(cmd *cobra.Command) (*config.Agent, error) {
	cfg := &config.Agent{}
	if f.configPath != "" {
		var err error
		if cfg, err = config.LoadAgent(f.configPath); err != nil {
			return nil, err
		}
	}
	if len(f.queues) > 0 {
		cfg.Queues = f.queues
	}
	if cmd.Flags().Changed("max-jobs") || f.configPath == "" {
		cfg.MaxJobs = f.maxJobs
	}
	return cfg, nil
}

func (a *app) agentCmd() *cobra.Command {
	var f agentFlags
	var metricsAddr string
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run an agent: claim jobs from queues, run them, report their states and logs",
		Long: `Run an agent: it claims jobs from its queues (long polls, so a job starts as
soon as it is enqueued), runs each on its queue's resource, follows it to the
end and reports every state and log line. It holds each job as a lease; if the
agent dies, another agent (or this one, restarted) re-attaches to what it ran.

The agent config (-c) is the YAML that W&B Launch's SageMaker agents use:
environment (region, profile), registry, builder, queues and max_jobs.
AWS credentials come from the standard chain (environment, profile, SSO, IMDS);
AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE> are honoured.

The agent runs Go's garbage collector at GOGC=50 unless GOGC is set: a
quarter less memory while it follows 1,000 jobs, for about the same CPU; with
10,000 jobs and more, GOGC=100 spends less CPU for more memory.`,
		Example: `  slipway agent -q cpu
  slipway agent --server http://slipway.internal:7070 -c agent.yaml
  slipway agent -q q1 -q q2 --max-jobs 4`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			agent.TuneGC()
			cfg, err := f.settings(cmd)
			if err != nil {
				return err
			}
			server := a.server
			if !cmd.Flags().Changed("server") && os.Getenv("SLIPWAY_SERVER") == "" && cfg.Server != "" {
				server = cfg.Server
			}
			c, err := a.clientAt(server)
			if err != nil {
				return err
			}
			if len(cfg.Queues) == 0 {
				return usageErr("no queue to serve: give -q QUEUE, or queues: in the agent config")
			}
			if metricsAddr != "" {
				if _, err := serveMetrics(cmd.Context(), metricsAddr, a.log); err != nil {
					return err
				}
			}
			return runAgent(cmd.Context(), c, cfg, f.name, f.grace, a.log)
		},
	}
	f.register(cmd, true)
	cmd.Flags().StringVar(&metricsAddr, "metrics-addr", "",
		"serve Prometheus metrics (builds, AWS API calls and throttles) at http://HOST:PORT/metrics; off when empty")
	cmd.AddCommand(a.agentVerifyCmd())
	return cmd
}

// runAgent runs an agent until ctx ends, then shuts it down as agent.Run
// says, giving local jobs grace to finish.
func runAgent(ctx context.Context, c *slipclient.Client, cfg *config.Agent, name string, grace time.Duration, log *slog.Logger) error {
	rs := newRunners(log, cfg)
	ag, err := agent.New(agent.Config{Client: c, Queues: cfg.Queues, MaxJobs: cfg.MaxJobs, Name: name, ShutdownGrace: grace,
		Logger: log, Runner: rs.forQueue, Build: newImages(cfg, log).build})
	if err != nil {
		return err
	}
	return ag.Run(ctx)
}

func (a *app) agentVerifyCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "verify -c agent.yaml",
		Short: "Check an agent's config and cloud setup, and say how to fix what is wrong",
		Long: `Check the agent config, then the AWS setup it needs: the region, the
credentials (STS), the SageMaker API, the ECR repository of the registry block
and the bucket of builder.build-context-store. Each failed check says how to fix
it. Exits 1 if any check failed.`,
		Example: `  slipway agent verify -c agent.yaml
  AWS_PROFILE=ml slipway agent verify -c agent.yaml -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if path == "" {
				return usageErr("verify needs the agent config: -c agent.yaml")
			}
			cfg, err := config.LoadAgent(path)
			if err != nil {
				return err
			}
			checks := append([]preflight.Check{{Name: "config " + path, OK: true, Detail: "valid"}}, preflight.Run(cmd.Context(), cfg)...)
			failed := 0
			for _, c := range checks {
				if !c.OK {
					failed++
				}
			}
			if a.json() {
				if err := a.printJSON(checks); err != nil {
					return err
				}
			} else {
				for _, c := range checks {
					mark := "ok  "
					if !c.OK {
						mark = "FAIL"
					}
					fmt.Fprintf(a.stdout, "%s  %-40s %s\n", mark, c.Name, c.Detail)
					if c.Fix != "" && !c.OK {
						fmt.Fprintf(a.stdout, "      fix: %s\n", c.Fix)
					}
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d checks failed", failed, len(checks))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "agent config YAML (required)")
	return cmd
}

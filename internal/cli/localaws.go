package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/localaws"
)

// localAWSFlags are the flags of `slipway local-aws`, shared with `up --local-aws`.
type localAWSFlags struct {
	cfg                      localaws.Config
	throttle, capacity       float64
	startDelay               time.Duration
	stopGrace                time.Duration
	maxInstances, maxRunning int
	stopOnShutdown           bool
}

func (f *localAWSFlags) register(cmd *cobra.Command, withAddr bool) {
	fl := cmd.Flags()
	if withAddr {
		fl.StringVar(&f.cfg.Addr, "addr", localaws.DefaultAddr, "address to listen on, HOST:PORT")
	}
	fl.StringVar(&f.cfg.DataDir, "data", "", "folder for buckets, job records, logs and the registry (default: slipway/local-aws in the user cache folder)")
	fl.StringVar(&f.cfg.Region, "region", "us-east-1", "region the endpoint claims to be")
	fl.StringVar(&f.cfg.Account, "account", "000000000000", "account id that STS and ARNs answer")
	fl.DurationVar(&f.stopGrace, "stop-grace", 120*time.Second, "time between SIGTERM and SIGKILL when a training job is stopped")
	fl.IntVar(&f.maxInstances, "max-instances", 4, "largest InstanceCount accepted")
	fl.IntVar(&f.maxRunning, "max-running-jobs", 0, "training jobs in progress at once before ResourceLimitExceeded; 0 for no limit")
	fl.BoolVar(&f.stopOnShutdown, "stop-on-shutdown", false, "stop training containers when the endpoint stops (default: leave them to re-attach)")
	fl.Float64Var(&f.throttle, "throttle-rate", 0, "fault injection: share of API calls answered ThrottlingException (0-1)")
	fl.Float64Var(&f.capacity, "capacity-error-rate", 0, "fault injection: share of CreateTrainingJob calls refused for capacity (0-1)")
	fl.DurationVar(&f.startDelay, "start-delay", 0, "fault injection: extra time each training job spends Starting")
}

// config returns the endpoint's config from the flags, logging to log.
func (f *localAWSFlags) config(log *slog.Logger) localaws.Config {
	c := f.cfg
	c.Logger = log
	c.StopGrace = f.stopGrace
	c.MaxInstanceCount = f.maxInstances
	c.MaxRunningJobs = f.maxRunning
	c.StopOnShutdown = f.stopOnShutdown
	c.Faults = localaws.Faults{ThrottleRate: f.throttle, CapacityErrorRate: f.capacity, StartDelay: f.startDelay}
	return c
}

func (a *app) localAWSCmd() *cobra.Command {
	var f localAWSFlags
	cmd := &cobra.Command{
		Use:   "local-aws",
		Short: "Serve a local SageMaker, S3, ECR, CloudWatch Logs, STS, Secrets Manager and SSM endpoint on one port",
		Long: `Serve the part of AWS that Slipway's SageMaker path uses, on one local port,
speaking the real wire protocols: training jobs run as containers on the local
Docker engine under SageMaker's container contract (/opt/ml/...), S3 objects,
the ECR registry, log streams, secrets and parameters live under --data (a test
double, not a vault: secret values are kept there unencrypted). The AWS CLI, the SDKs and Slipway's agent
work against it unchanged through --endpoint-url or AWS_ENDPOINT_URL.

It does not check signatures: any credentials work. See docs/local-aws.md.`,
		Example: `  slipway local-aws --addr 127.0.0.1:4566 --data ./local-aws
  AWS_ENDPOINT_URL=http://127.0.0.1:4566 AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x AWS_REGION=us-east-1 \
    aws sagemaker list-training-jobs`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			srv, err := localaws.New(f.config(a.log))
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", f.cfg.Addr)
			if err != nil {
				return fmt.Errorf("listening on %s: %w", f.cfg.Addr, err)
			}
			fmt.Fprintf(a.stderr, "local AWS endpoint at http://%s (its ECR registry on the same port); Ctrl-C to stop\n", ln.Addr())
			return srv.Serve(cmd.Context(), ln)
		},
	}
	f.register(cmd, true)
	return cmd
}

// startLocalAWS serves a local AWS endpoint on addr until ctx ends, and points this process's AWS SDK clients at it: the agent's
// SageMaker runner then submits to it with no further setup.
func startLocalAWS(ctx context.Context, addr string, cfg localaws.Config) (url string, done <-chan error, err error) {
	srv, err := localaws.New(cfg)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("listening for the local AWS endpoint on %s: %w", addr, err)
	}
	url = "http://" + ln.Addr().String()
	// Dummy credentials: the endpoint takes any, and real ones have no
	// business being sent to it.
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL":      url,
		"AWS_ACCESS_KEY_ID":     "local",
		"AWS_SECRET_ACCESS_KEY": "local",
		"AWS_REGION":            cfg.Region,
	} {
		os.Setenv(k, v)
	}
	os.Unsetenv("AWS_SESSION_TOKEN")
	os.Unsetenv("AWS_PROFILE")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, ln) }()
	return url, errc, nil
}

package cli

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/docker/docker/client"
	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/baseimage"
	slipclient "github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/config"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/localaws"
	"github.com/slipway-ml/slipway/internal/source"
)

//go:embed demodata
var demoData embed.FS

func (a *app) demoCmd() *cobra.Command {
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a sample training job end to end in a temporary stack, then clean up",
		Long: `Start the single-machine stack (server, agent, SQLite) in a temporary directory,
create a queue, launch a sample training job, show its logs and final state,
and exit 0 if every job finished. With a Docker engine reachable, the job also
runs in a local container and, on the embedded local AWS endpoint, as a
SageMaker training job; without one, the demo says what to install (from a
checkout, make demo installs and starts it on Debian as root).`,
		Example: `  make demo                 # from a checkout: set up the Docker engine, then run it
  go run ./cmd/slipway demo
  slipway demo --keep   # keep the temporary directory to look at the database`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runDemo(cmd.Context(), keep)
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary directory")
	return cmd
}

func (a *app) runDemo(ctx context.Context, keep bool) error {
	dir, err := os.MkdirTemp("", "slipway-demo-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Fprintf(a.stdout, "keeping %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	// The demo narrates; the stack's own logs would drown it.
	a.log = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	st, err := openStore(ctx, filepath.Join(dir, "slipway.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	s, err := startStack(ctx, "127.0.0.1:0", st, &config.Agent{MaxJobs: 2}, a.log)
	if err != nil {
		return err
	}
	a.say("started server and agent at %s (SQLite in %s)", s.url, dir)

	code := filepath.Join(dir, "project")
	if err := writeDemoProject(code); err != nil {
		return err
	}
	tarball, err := source.Pack(code, api.MaxCodeSize)
	if err != nil {
		return err
	}
	spec := job.Spec{Entrypoint: []string{"sh", "train.sh"}, RunConfig: []byte(`{"epochs": 3, "lr": 0.01}`)}

	if err := a.demoRun(ctx, s.client, api.CreateQueue{Name: "demo-local", Resource: job.LocalProcess}, spec, tarball); err != nil {
		return err
	}

	docker, err := dockerEngine(ctx)
	if err != nil {
		a.say("no Docker engine reachable (%v): skipping the container and SageMaker runs.\n"+
			"    To run them too: install and start one (Debian: `apt-get install docker.io busybox-static`, then `dockerd &`), or run `bash scripts/deps.sh` as root.", err)
	} else {
		defer docker.Close()
		img, err := baseimage.Ensure(ctx, docker)
		if err != nil {
			return fmt.Errorf("building the demo's base image: %w", err)
		}
		spec.Image = img
		if err := a.demoRun(ctx, s.client, api.CreateQueue{Name: "demo-container", Resource: job.LocalContainer}, spec, tarball); err != nil {
			return err
		}
		if err := a.demoSageMaker(ctx, s.client, dir, img); err != nil {
			return err
		}
	}
	a.say("demo finished: every job finished")
	stop()
	return s.wait()
}

// demoSageMakerQueue is the DESIGN.md queue body, filled for the local endpoint.
const demoSageMakerQueue = `{"RoleArn": "arn:aws:iam::000000000000:role/SageMakerRole", "EcrRepoName": "",
 "ResourceConfig": {"InstanceType": "ml.m4.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 2},
 "OutputDataConfig": {"S3OutputPath": "s3://slipway-demo/output"},
 "StoppingCondition": {"MaxRuntimeInSeconds": 600}}`

// demoSageMaker runs a job through a sagemaker queue on a local AWS
// endpoint: the agent sends CreateTrainingJob through the AWS SDK, the
// endpoint runs the image under SageMaker's container contract, and the
// model lands in its S3.
func (a *app) demoSageMaker(ctx context.Context, c *slipclient.Client, dir, image string) error {
	url, _, err := startLocalAWS(ctx, "127.0.0.1:0", localaws.Config{
		DataDir: filepath.Join(dir, "local-aws"), Region: "us-east-1", StopGrace: 2 * time.Second, StopOnShutdown: true,
		Logger: a.log,
	})
	if err != nil {
		return err
	}
	a.say("started a local AWS endpoint (SageMaker, S3, ECR, CloudWatch Logs, STS) at %s", url)
	script := `echo "hyperparameters: $(cat /opt/ml/input/config/hyperparameters.json)"
for e in 1 2 3; do echo "epoch $e/3 loss=0.$((9 - e * 2))"; done
echo "weights after 3 epochs" > /opt/ml/model/model.txt
echo "model saved to /opt/ml/model"`
	spec := job.Spec{Image: image, Entrypoint: []string{"sh", "-c", script}, RunConfig: []byte(`{"epochs": 3, "lr": 0.01}`)}
	return a.demoRun(ctx, c, api.CreateQueue{Name: "demo-sagemaker", Resource: job.SageMaker, Config: []byte(demoSageMakerQueue)}, spec, nil)
}

// demoRun creates a queue and follows one job through it.
func (a *app) demoRun(ctx context.Context, c *slipclient.Client, cq api.CreateQueue, spec job.Spec, code []byte) error {
	if _, err := c.CreateQueue(ctx, cq); err != nil {
		return err
	}
	queue := cq.Name
	a.say("created queue %s (%s)", queue, cq.Resource)
	start := time.Now()
	j, err := c.Enqueue(ctx, api.Enqueue{Queue: queue, Priority: job.Medium, Spec: spec, Code: code})
	if err != nil {
		return err
	}
	a.say("launched job %s; following it:", j.ID)
	if err := a.follow(ctx, c, j.ID); err != nil {
		return err
	}
	j, err = c.Job(ctx, j.ID)
	if err != nil {
		return err
	}
	a.say("job %s: %s (%s) in %s", j.ID, j.State, j.Reason, time.Since(start).Round(time.Millisecond))
	for _, k := range slices.Sorted(maps.Keys(j.Outputs)) {
		a.say("  %s: %s", k, j.Outputs[k])
	}
	fmt.Fprintln(a.stdout)
	return nil
}

func (a *app) say(format string, args ...any) {
	fmt.Fprintf(a.stdout, "--- "+format+"\n", args...)
}

func writeDemoProject(dir string) error {
	sub, err := fs.Sub(demoData, "demodata")
	if err != nil {
		return err
	}
	return os.CopyFS(dir, sub)
}

// dockerEngine returns a client for the local Docker engine if one answers.
func dockerEngine(ctx context.Context) (*client.Client, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx); err != nil {
		cli.Close()
		return nil, err
	}
	return cli, nil
}

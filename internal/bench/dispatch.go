package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	awssm "github.com/aws/aws-sdk-go-v2/service/sagemaker"
	smtypes "github.com/aws/aws-sdk-go-v2/service/sagemaker/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/baseimage"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/localaws"
	"github.com/slipway-ml/slipway/internal/runner"
	"github.com/slipway-ml/slipway/internal/runner/sagemaker"
)

// errNoDocker means no Docker engine answered; measures that need one
// are skipped (or fail, under SLIPWAY_REQUIRE_DOCKER=1).
var errNoDocker = errors.New("no Docker engine")

// dockerClient returns a client of the local engine, errNoDocker when it
// does not answer.
func dockerClient(ctx context.Context) (*client.Client, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoDocker, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx); err != nil {
		cli.Close()
		return nil, fmt.Errorf("%w: %w", errNoDocker, err)
	}
	return cli, nil
}

// requireDocker reports whether a missing engine is a failure.
func requireDocker() bool { return os.Getenv("SLIPWAY_REQUIRE_DOCKER") == "1" }

// Dispatch is what one dispatch run saw, per job.
type Dispatch struct {
	// ToCreate is from the enqueue call to the CreateTrainingJob request
	// reaching the local AWS endpoint; ToClaim is from the enqueue call to
	// the job's claimed event.
	ToCreate, ToClaim []time.Duration
}

// MeasureDispatch serves the local AWS endpoint (training jobs run on the
// Docker engine), one idle agent serving a sagemaker queue on it, and
// enqueues n jobs one at a time, each once the one before has ended and
// the agent waits for work again; it times each from the enqueue call to
// the CreateTrainingJob request's arrival at the endpoint.
func MeasureDispatch(ctx context.Context, n int, o Options) (Dispatch, error) {
	o = o.withDefaults()
	useLocalCredentials()
	cli, err := dockerClient(ctx)
	if err != nil {
		return Dispatch{}, err
	}
	defer cli.Close()
	img, err := baseimage.Ensure(ctx, cli)
	if err != nil {
		return Dispatch{}, err
	}
	aws, stopAWS, err := serveLocalAWS(ctx, cli, o)
	if err != nil {
		return Dispatch{}, err
	}
	defer stopAWS()

	// The endpoint's own handler, behind one that notes when each
	// CreateTrainingJob arrives.
	arrived := make(chan arrival, n)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Dispatch{}, fmt.Errorf("listening: %w", err)
	}
	inner := aws.Handler()
	front := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") == "SageMaker.CreateTrainingJob" {
			a := arrival{at: time.Now()}
			if body, err := io.ReadAll(r.Body); err == nil {
				var req struct{ TrainingJobName string }
				_ = json.Unmarshal(body, &req)
				a.name = req.TrainingJobName
				r.Body = io.NopCloser(bytes.NewReader(body))
			}
			select {
			case arrived <- a:
			default:
			}
		}
		inner.ServeHTTP(w, r)
	})}
	go func() { _ = front.Serve(ln) }()
	defer front.Close()
	endpoint := "http://" + ln.Addr().String()

	s, err := startStack(ctx, "", o.Logger)
	if err != nil {
		return Dispatch{}, err
	}
	defer s.Close()
	const q = "sm-dispatch"
	if err := s.queue(ctx, api.CreateQueue{Name: q, Resource: job.SageMaker, Config: json.RawMessage(benchQueueConfig)}); err != nil {
		return Dispatch{}, err
	}
	sm := awssm.New(awssm.Options{Region: "us-east-1", BaseEndpoint: &endpoint,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDBENCH", "bench", "")})
	r, err := sagemaker.New(ctx, sagemaker.Config{Region: "us-east-1", Endpoint: endpoint, Logger: o.Logger})
	if err != nil {
		return Dispatch{}, err
	}
	stop, err := s.agents(ctx, 1, q, -1, o.Logger, func(q job.Queue) (runner.Runner, error) { return r.ForQueue(q), nil })
	if err != nil {
		return Dispatch{}, err
	}
	defer stop()

	var d Dispatch
	spec := job.Spec{Image: img, Entrypoint: []string{"true"}}
	for i := range n {
		// Let the agent's next long-poll claim reach the server: the agent
		// is idle, waiting for work, when the job arrives.
		if err := pause(ctx, 100*time.Millisecond); err != nil {
			return d, err
		}
		start := time.Now()
		j, err := s.Client.Enqueue(ctx, api.Enqueue{Queue: q, Spec: spec})
		if err != nil {
			return d, fmt.Errorf("enqueueing job %d: %w", i, err)
		}
		var a arrival
		select {
		case a = <-arrived:
			d.ToCreate = append(d.ToCreate, a.at.Sub(start))
		case <-time.After(30 * time.Second):
			return d, fmt.Errorf("job %s: no CreateTrainingJob reached the endpoint within 30s", j.ID)
		case <-ctx.Done():
			return d, ctx.Err()
		}
		if full, err := s.Store.GetJob(ctx, j.ID); err == nil {
			for _, e := range full.Events {
				if e.To == job.Claimed {
					d.ToClaim = append(d.ToClaim, e.At.Sub(start))
					break
				}
			}
		}
		if err := waitTrainingEnded(ctx, sm, a.name); err != nil {
			return d, err
		}
	}
	return d, nil
}

// arrival is a CreateTrainingJob request reaching the endpoint.
type arrival struct {
	at   time.Time
	name string
}

// waitTrainingEnded waits for a training job to end at the endpoint, so
// that the next job is dispatched on an idle machine: no container of an
// earlier job still starting, running or being uploaded beside it.
func waitTrainingEnded(ctx context.Context, sm *awssm.Client, name string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := sm.DescribeTrainingJob(ctx, &awssm.DescribeTrainingJobInput{TrainingJobName: &name})
		if err == nil {
			switch out.TrainingJobStatus {
			case smtypes.TrainingJobStatusCompleted, smtypes.TrainingJobStatusFailed, smtypes.TrainingJobStatusStopped:
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("training job %s did not end within a minute (%v)", name, err)
		}
		if err := pause(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// serveLocalAWS serves the local AWS endpoint on loopback with a temporary
// data dir; stop shuts it down, stopping its training containers, and
// removes what it left.
func serveLocalAWS(ctx context.Context, cli *client.Client, o Options) (*localaws.Server, func(), error) {
	dir, err := os.MkdirTemp("", "slipway-bench-aws-")
	if err != nil {
		return nil, nil, fmt.Errorf("making a temporary dir: %w", err)
	}
	srv, err := localaws.New(localaws.Config{DataDir: dir, Docker: cli, Logger: o.Logger, StopGrace: time.Second,
		StopOnShutdown: true, ShutdownTimeout: 30 * time.Second})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("starting the local AWS endpoint: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("listening: %w", err)
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, ln) }()
	for srv.URL() == "" {
		time.Sleep(time.Millisecond)
	}
	return srv, func() {
		cancel()
		if err := <-done; err != nil {
			o.Logger.Warn("local AWS endpoint shut down", "err", err)
		}
		removeEndpointLeftovers(cli, srv.EndpointID())
		os.RemoveAll(dir)
	}, nil
}

// removeEndpointLeftovers removes the containers and networks labelled as
// the endpoint's: only what this run made.
func removeEndpointLeftovers(cli *client.Client, id string) {
	ctx := context.Background()
	f := filters.NewArgs(filters.Arg("label", "slipway.localaws.endpoint="+id))
	if cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f}); err == nil {
		for _, c := range cs {
			_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
		}
	}
	if ns, err := cli.NetworkList(ctx, network.ListOptions{Filters: f}); err == nil {
		for _, n := range ns {
			_ = cli.NetworkRemove(ctx, n.ID)
		}
	}
}

// The W&B Launch agent polls its queue every 10 s: 5 s median dispatch.
const wandbMedianMS = 5000

func dispatchMeasure(ctx context.Context, o Options) ([]Result, error) {
	n := 30
	if o.Full {
		n = 200
	}
	d, err := MeasureDispatch(ctx, n, o)
	if errors.Is(err, errNoDocker) && !requireDocker() {
		return []Result{skipped("dispatch", "enqueue → CreateTrainingJob", "ms", err.Error())}, nil
	}
	if err != nil {
		return nil, err
	}
	res := summarize(Result{Measure: "dispatch", Case: "enqueue → CreateTrainingJob", Unit: "ms",
		Note: "idle agent, local AWS endpoint, SQLite; the arrival is timed in front of the endpoint's handler"}, ms(d.ToCreate))
	res = compare(res, wandbMedianMS, "W&B Launch, 10 s poll", true)
	res = target(res, "p99 < 50 ms", res.P99 < 50)
	claim := summarize(Result{Measure: "dispatch", Case: "enqueue → claimed", Unit: "ms",
		Note: "the server's claimed event; the rest of the dispatch is the agent's submitting transition and the SDK call"}, ms(d.ToClaim))
	return []Result{res, claim}, nil
}

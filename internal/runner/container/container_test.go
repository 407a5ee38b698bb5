package container_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/slipway-ml/slipway/internal/dockertest"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
	slipcontainer "github.com/slipway-ml/slipway/internal/runner/container"
	"github.com/slipway-ml/slipway/internal/runner/runnertest"
)

// testLabel marks the containers of one test runner, so that its cleanup
// removes only its own.
const testLabel = "slipway.test"

type fixture struct {
	cli   *client.Client
	image string
}

func setup(t *testing.T) fixture {
	t.Helper()
	cli := dockertest.Client(t)
	return fixture{cli: cli, image: dockertest.BaseImage(t, cli)}
}

// newRunner returns a runner whose containers carry a label of their own,
// removed when t ends.
func (f fixture) newRunner(t *testing.T) *slipcontainer.Runner {
	t.Helper()
	return f.newRunnerWith(t, slipcontainer.Config{WorkDir: t.TempDir()})
}

// newRunnerWith is newRunner with cfg's WorkDir and Secrets.
func (f fixture) newRunnerWith(t *testing.T, cfg slipcontainer.Config) *slipcontainer.Runner {
	t.Helper()
	mark := job.NewID("t")
	r, err := slipcontainer.New(slipcontainer.Config{
		Client:  f.cli,
		Grace:   time.Second,
		WorkDir: cfg.WorkDir,
		Labels:  map[string]string{testLabel: mark},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Secrets: cfg.Secrets,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		list, err := f.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", testLabel+"="+mark))})
		if err != nil {
			t.Errorf("listing test containers: %v", err)
			return
		}
		for _, c := range list {
			if err := f.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil {
				t.Errorf("removing test container %s: %v", c.ID, err)
			}
		}
	})
	return r
}

func (f fixture) shell(script string) job.Spec {
	return job.Spec{Image: f.image, Entrypoint: []string{"/bin/sh", "-c"}, Args: []string{script}}
}

// startAndInspect starts task on r and inspects its container, failing t if
// either fails, and checks that none of secrets stands in the container's
// environment: a job's secret values reach it only through the secrets folder.
func (f fixture) startAndInspect(ctx context.Context, t *testing.T, r *slipcontainer.Runner, task runner.Task, secrets ...string) (string, container.InspectResponse) {
	t.Helper()
	id, err := r.Start(ctx, task)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	info, err := f.cli.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatalf("inspecting %s: %v", id, err)
	}
	for _, e := range info.Config.Env {
		for _, v := range secrets {
			if strings.Contains(e, v) {
				t.Errorf("container env holds a secret value: %q", e)
			}
		}
	}
	return id, info
}

func TestConformance(t *testing.T) {
	t.Parallel()
	f := setup(t)
	runnertest.Run(t, func(t *testing.T) (runner.Runner, runnertest.Env) {
		return f.newRunner(t), runnertest.Env{Spec: f.shell, Reattach: true}
	})
}

// TestLabelsAndAdoption checks the container's name and labels, and that a
// second runner's Start adopts the running container instead of making one.
func TestLabelsAndAdoption(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first, second := f.newRunner(t), f.newRunner(t)
	task := runnertest.NewTask(f.shell("echo ran; sleep 1"))
	task.Job.Attempt = 3
	id, info := f.startAndInspect(ctx, t, first, task)
	if want := "slipway-" + task.Name; id != want {
		t.Errorf("external id: got %q, want %q", id, want)
	}
	for k, want := range map[string]string{slipcontainer.LabelJob: task.Job.ID, slipcontainer.LabelAttempt: "3"} {
		if got := info.Config.Labels[k]; got != want {
			t.Errorf("label %s: got %q, want %q", k, got, want)
		}
	}
	id2, err := second.Start(ctx, task)
	if err != nil || id2 != id {
		t.Fatalf("second runner's Start: got %q, %v, want %q adopted", id2, err, id)
	}
	var s runnertest.Sink
	res, err := second.Wait(ctx, task, id, &s)
	if err != nil || res.State != job.Finished {
		t.Fatalf("Wait: got %+v, %v, want finished", res, err)
	}
	if got, want := s.Lines("stdout"), []string{"ran"}; !reflect.DeepEqual(got, want) {
		t.Errorf("stdout: got %q, want %q", got, want)
	}
	if _, err := f.cli.ContainerInspect(ctx, id); err == nil {
		t.Errorf("container %s still there after its result was read", id)
	}
}

// TestWaitCanceledKeepsContainer checks that a Wait cut short leaves the
// container for a later Wait to re-attach to.
func TestWaitCanceledKeepsContainer(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := f.newRunner(t)
	task := runnertest.NewTask(f.shell("echo one; sleep 1; echo two"))
	id, err := r.Start(ctx, task)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	short, stop := context.WithCancel(ctx)
	var first runnertest.Sink
	go func() {
		first.WaitState(short, job.Running)
		stop()
	}()
	if _, err := r.Wait(short, task, id, &first); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled Wait: got %v, want context.Canceled", err)
	}
	var s runnertest.Sink
	res, err := r.Wait(ctx, task, id, &s)
	if err != nil || res.State != job.Finished {
		t.Fatalf("second Wait: got %+v, %v, want finished", res, err)
	}
	if got, want := s.Lines("stdout"), []string{"one", "two"}; !reflect.DeepEqual(got, want) {
		t.Errorf("stdout: got %q, want %q", got, want)
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r := f.newRunner(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		spec job.Spec
		want string
	}{
		{"no image", job.Spec{Entrypoint: []string{"true"}}, "spec.image"},
		{"missing image", job.Spec{Image: "slipway-test/does-not-exist:never"}, "slipway-test/does-not-exist:never"},
		{"no such entrypoint", job.Spec{Image: f.image, Entrypoint: []string{"/nonexistent/train"}}, "/nonexistent/train"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task := runnertest.NewTask(tc.spec)
			_, err := r.Start(ctx, task)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Start: got %v, want an error naming %q", err, tc.want)
			}
			if _, err := f.cli.ContainerInspect(ctx, slipcontainer.Name(task)); err == nil {
				t.Errorf("container %s left behind by a failed Start", slipcontainer.Name(task))
			}
		})
	}
}

func TestStopUnknown(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r := f.newRunner(t)
	if err := r.Stop(context.Background(), "slipway-no-such-run"); !errors.Is(err, runner.ErrLost) {
		t.Errorf("Stop: got %v, want runner.ErrLost", err)
	}
}

// TestNetwork checks that the job's container joins the configured network.
func TestNetwork(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	netName := job.NewID("slipway-test-net-")
	if _, err := f.cli.NetworkCreate(ctx, netName, network.CreateOptions{Labels: map[string]string{testLabel: netName}}); err != nil {
		t.Fatalf("creating network: %v", err)
	}
	t.Cleanup(func() { // runs after the runner's container cleanup below
		if err := f.cli.NetworkRemove(context.Background(), netName); err != nil {
			t.Errorf("removing network %s: %v", netName, err)
		}
	})
	mark := job.NewID("t")
	r, err := slipcontainer.New(slipcontainer.Config{Client: f.cli, Network: netName, WorkDir: t.TempDir(), Labels: map[string]string{testLabel: mark},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	task := runnertest.NewTask(f.shell("sleep 1"))
	id, err := r.Start(ctx, task)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = f.cli.ContainerRemove(context.Background(), id, container.RemoveOptions{Force: true}) })
	info, err := f.cli.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatalf("inspecting %s: %v", id, err)
	}
	if got := string(info.HostConfig.NetworkMode); got != netName {
		t.Errorf("network mode: got %q, want %q", got, netName)
	}
	if _, ok := info.NetworkSettings.Networks[netName]; !ok {
		t.Errorf("networks: got %v, want %s among them", slices.Collect(maps.Keys(info.NetworkSettings.Networks)), netName)
	}
	if res, err := r.Wait(ctx, task, id, &runnertest.Sink{}); err != nil || res.State != job.Finished {
		t.Errorf("Wait: got %+v, %v, want finished", res, err)
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	if _, err := slipcontainer.New(slipcontainer.Config{Grace: -time.Second}); !errors.Is(err, job.ErrInvalid) {
		t.Errorf("negative grace: got %v, want job.ErrInvalid", err)
	}
	if _, err := slipcontainer.New(slipcontainer.Config{WorkDir: "relative"}); !errors.Is(err, job.ErrInvalid) {
		t.Errorf("relative work dir: got %v, want job.ErrInvalid", err)
	}
	c := slipcontainer.Config{}.WithDefaults()
	if c.Grace != 10*time.Second || c.WorkDir == "" || c.Logger == nil {
		t.Errorf("defaults: got %+v", c)
	}
}

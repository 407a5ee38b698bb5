package localaws_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/sagemaker"
	smtypes "github.com/aws/aws-sdk-go-v2/service/sagemaker/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/slipway-ml/slipway/internal/dockertest"
	"github.com/slipway-ml/slipway/internal/localaws"
	"github.com/slipway-ml/slipway/internal/localaws/localawstest"
)

// TestRestartKeepsJobs stops an endpoint with containers running, removes
// one of them, and starts a new endpoint on the same data dir: old jobs are
// still described, the running one is re-attached and completes, the
// vanished one fails with a reason.
func TestRestartKeepsJobs(t *testing.T) {
	t.Parallel()
	docker := dockertest.Client(t)
	dir := t.TempDir()
	first, err := localaws.New(localaws.Config{DataDir: dir, Docker: docker, StopGrace: time.Second})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- first.Serve(ctx, ln) }()
	for first.URL() == "" {
		time.Sleep(time.Millisecond)
	}
	c := &clients{sm: sagemaker.NewFromConfig(sdkConfig(first.URL())), img: dockertest.BaseImage(t, docker)}
	for name, script := range map[string]string{"done-1": "true", "survivor": "echo before; sleep 3; echo after", "vanish": "sleep 300"} {
		if _, err := c.sm.CreateTrainingJob(ctx, c.job(name, script)); err != nil {
			t.Fatalf("CreateTrainingJob %s: %v", name, err)
		}
	}
	c.wait(t, "done-1")
	c.waitSecondary(t, "survivor", smtypes.SecondaryStatusTraining)
	c.waitSecondary(t, "vanish", smtypes.SecondaryStatusTraining)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("first endpoint shut down: %v", err)
	}
	f := filters.NewArgs(filters.Arg("label", "slipway.localaws.job=vanish"), filters.Arg("label", "slipway.localaws.endpoint="+first.EndpointID()))
	cs, err := docker.ContainerList(context.Background(), container.ListOptions{All: true, Filters: f})
	if err != nil || len(cs) != 1 {
		t.Fatalf("vanish containers: got %d (%v), want 1 left running", len(cs), err)
	}
	if err := docker.ContainerRemove(context.Background(), cs[0].ID, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}

	second := localawstest.Start(t, localaws.Config{DataDir: dir, StopGrace: time.Second, StopOnShutdown: true})
	c.sm = sagemaker.NewFromConfig(sdkConfig(second.URL()))
	c.logs = cloudwatchlogs.NewFromConfig(sdkConfig(second.URL()))
	if out := c.wait(t, "done-1"); out.TrainingJobStatus != smtypes.TrainingJobStatusCompleted {
		t.Errorf("done-1 after restart: got %s, want Completed", out.TrainingJobStatus)
	}
	if out := c.wait(t, "survivor"); out.TrainingJobStatus != smtypes.TrainingJobStatusCompleted {
		t.Errorf("survivor: got %s/%s %q, want Completed", out.TrainingJobStatus, out.SecondaryStatus, aws.ToString(out.FailureReason))
	}
	if lines := c.waitLog(t, "survivor", "after"); !strings.HasPrefix(lines, "before\n") {
		t.Errorf("survivor logs: got %q, want before, then after from the re-attached endpoint", lines)
	}
	out := c.wait(t, "vanish")
	if out.TrainingJobStatus != smtypes.TrainingJobStatusFailed || !strings.Contains(aws.ToString(out.FailureReason), "vanished") {
		t.Errorf("vanish: got %s %q, want Failed, vanished", out.TrainingJobStatus, aws.ToString(out.FailureReason))
	}
}

// The race detector doubles the runtime's stack guard, so that under -race
// no waiting stack shrinks below 8 KB: this test measures plain builds.

//go:build !race

package agent_test

import (
	"context"
	"encoding/json"
	"os"
	"runtime"
	"runtime/metrics"
	"testing"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/bench"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner/sagemaker"
	"github.com/slipway-ml/slipway/internal/server"
)

// TestWaitingJobsKeepSmallStacks checks that the goroutine of each
// SageMaker job the agent follows keeps a 4 KB stack while it waits. The
// runtime shrinks a stack from 8 KB to 4 KB only when under about 1.2 KB
// of it is in use (it adds 800 bytes to what is used, and wants a quarter
// of the stack): a few more bytes of frames on the waiting path (runJob,
// drive, follow, the runner's Wait) double every followed job's stack.
//
// Not parallel: it measures the whole process's stacks. Not under -race
// (see the build constraint). At 400 jobs a good build measures about 5 KB a
// job (4 KB stacks, and the connections' goroutines), a regressed one 9.
func TestWaitingJobsKeepSmallStacks(t *testing.T) {
	const jobs = 400
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "test", "AWS_SESSION_TOKEN": "",
		"AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull, "AWS_PROFILE": "",
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL": "",
	} {
		t.Setenv(k, v)
	}
	sm, err := bench.StartStandIn()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sm.Close() })
	e := setup(t, server.Config{})
	cfg := json.RawMessage(`{"RoleArn": "arn:aws:iam::000000000000:role/SageMakerRole", "EcrRepoName": "",
	 "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
	 "OutputDataConfig": {"S3OutputPath": "s3://test/out"}, "StoppingCondition": {"MaxRuntimeInSeconds": 86400}}`)
	q, err := e.c.CreateQueue(e.ctx, api.CreateQueue{Name: "sm", Resource: job.SageMaker, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	r, err := sagemaker.New(context.Background(), sagemaker.Config{Region: "us-east-1", Endpoint: sm.URL(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range jobs {
		ids = append(ids, e.launch("sm", job.Spec{Image: "test/train:1", Entrypoint: []string{"python", "train.py"}}, job.Medium).ID)
	}
	before := stackBytes()
	e.startAgent([]string{"sm"}, -1, r.ForQueue(q))
	for _, id := range ids {
		e.waitFor(id, "starting", func(j job.Job) bool { return j.State == job.Starting || j.State == job.Running })
	}
	perJob := float64(stackBytes()-before) / jobs
	t.Logf("stacks: %.0f bytes a followed job", perJob)
	if perJob > 7<<10 {
		t.Errorf("stacks while %d SageMaker jobs wait: got %.1f KB a job, want about 4 KB (under 7 KB)", jobs, perJob/1024)
	}
}

// stackBytes is the memory in goroutine stacks once collections have
// shrunk every stack that can be (one halving per collection).
func stackBytes() uint64 {
	for range 4 {
		runtime.GC()
	}
	s := []metrics.Sample{{Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

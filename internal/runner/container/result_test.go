package container

import (
	"reflect"
	"testing"

	"github.com/docker/docker/api/types/container"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
)

func TestResult(t *testing.T) {
	t.Parallel()
	state := func(s container.State) container.InspectResponse {
		return container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{State: &s}}
	}
	for _, tc := range []struct {
		name    string
		info    container.InspectResponse
		stopped bool
		lastErr string
		want    runner.Result
	}{
		{"exit 0", state(container.State{ExitCode: 0}), false, "", runner.Result{State: job.Finished, Reason: "exit code 0"}},
		{"exit 2", state(container.State{ExitCode: 2}), false, "nan loss", runner.Result{State: job.Failed, Reason: "exit code 2: nan loss"}},
		{"oom", state(container.State{ExitCode: 137, OOMKilled: true}), false, "Killed", runner.Result{State: job.Failed, Reason: "out of memory (exit code 137)"}},
		{"stopped", state(container.State{ExitCode: 137}), true, "", runner.Result{State: job.Stopped, Reason: "stopped on request"}},
		{"engine error", state(container.State{ExitCode: 127, Error: "exec: not found"}), false, "x", runner.Result{State: job.Failed, Reason: "exit code 127: exec: not found"}},
	} {
		if got := result(tc.info, tc.stopped, tc.lastErr); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

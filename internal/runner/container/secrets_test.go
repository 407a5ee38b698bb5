package container_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	slipcontainer "github.com/slipway-ml/slipway/internal/runner/container"
	"github.com/slipway-ml/slipway/internal/runner/runnertest"
)

func TestSecretsMountedReadOnly(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := f.newRunner(t)
	spec := f.shell(`echo "dir $SLIPWAY_SECRETS_DIR"; cat "$SLIPWAY_SECRETS_DIR/API_TOKEN"; echo; echo x > "$SLIPWAY_SECRETS_DIR/API_TOKEN" 2>/dev/null || echo read-only`)
	spec.Secrets = []job.Secret{{Name: "API_TOKEN", Ref: job.SealedRef + "c2VhbGVk"}}
	task := runnertest.NewTask(spec)
	task.Secrets = map[string]string{"API_TOKEN": "container-secret-value"}
	id, err := r.Start(ctx, task)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	info, err := f.cli.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatalf("inspecting %s: %v", id, err)
	}
	var host string
	for _, m := range info.Mounts {
		if m.Destination == slipcontainer.SecretsDir {
			host = m.Source
			if m.RW {
				t.Errorf("secrets mount %s is read-write, want read-only", m.Destination)
			}
		}
	}
	if host == "" {
		t.Fatalf("mounts %+v: want one at %s", info.Mounts, slipcontainer.SecretsDir)
	}
	for _, e := range info.Config.Env {
		if strings.Contains(e, "container-secret-value") {
			t.Errorf("container env holds the value: %q", e)
		}
	}
	sink := &runnertest.Sink{}
	res, err := r.Wait(ctx, task, id, sink)
	if err != nil || res.State != job.Finished {
		t.Fatalf("Wait: got %+v, %v, want finished", res, err)
	}
	got := sink.Lines("stdout")
	want := []string{"dir " + slipcontainer.SecretsDir, "container-secret-value", "read-only"}
	if !slices.Equal(got, want) {
		t.Errorf("stdout: got %q, want %q", got, want)
	}
	if _, err := os.Stat(host); !os.IsNotExist(err) {
		t.Errorf("secrets folder %s after the run: got %v, want it gone", host, err)
	}
}

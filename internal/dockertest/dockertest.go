// Package dockertest gives tests a Docker engine client and a small base image
// built on the spot, since no public registry is reachable here.
//
// A test that needs Docker calls Client: without an engine the test is
// skipped, unless SLIPWAY_REQUIRE_DOCKER=1 (set by `make test`), where it
// fails, so that CI cannot pass by skipping.
package dockertest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/slipway-ml/slipway/internal/baseimage"
)

// Client returns a client for the local Docker engine, or skips (or fails,
// under SLIPWAY_REQUIRE_DOCKER=1) the test when none answers.
func Client(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = cli.Ping(ctx)
	}
	if err != nil {
		if os.Getenv("SLIPWAY_REQUIRE_DOCKER") == "1" {
			t.Fatalf("no Docker engine: %v (run scripts/deps.sh)", err)
		}
		t.Skipf("no Docker engine: %v (run scripts/deps.sh, or make test)", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// BaseImage returns the tag of a busybox image in the engine, building it
// when missing.
func BaseImage(t testing.TB, cli client.APIClient) string {
	t.Helper()
	ref, err := baseimage.Ensure(context.Background(), cli)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

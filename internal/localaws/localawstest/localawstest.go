// Package localawstest starts a local AWS endpoint for tests: on
// 127.0.0.1:0, with a temporary data dir, the test's Docker engine, short
// grace periods, and everything it made removed when the test ends.
package localawstest

import (
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"

	"github.com/slipway-ml/slipway/internal/dockertest"
	"github.com/slipway-ml/slipway/internal/localaws"
)

// Start serves a local AWS endpoint until the test ends and returns it; its
// URL() is the endpoint URL for the SDK's BaseEndpoint or the CLI's
// --endpoint-url. Without a Docker engine the test is skipped (or fails under
// SLIPWAY_REQUIRE_DOCKER=1), as with dockertest.Client.
//
// Without cfg the endpoint gets DataDir t.TempDir(), StopGrace 1s,
// StopOnShutdown true and the dockertest engine. With a cfg, its set fields
// are kept and only DataDir, StopGrace and Docker get those defaults
// (StopOnShutdown is taken as given). Either way the containers and networks
// the endpoint made are removed when the test ends.
func Start(t testing.TB, cfg ...localaws.Config) *localaws.Server {
	t.Helper()
	var c localaws.Config
	if len(cfg) > 0 {
		c = cfg[0]
	}
	if c.Docker == nil {
		c.Docker = dockertest.Client(t)
	}
	if c.DataDir == "" {
		c.DataDir = t.TempDir()
	}
	if c.StopGrace == 0 {
		c.StopGrace = time.Second
	}
	if len(cfg) == 0 {
		c.StopOnShutdown = true
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	srv, err := localaws.New(c)
	if err != nil {
		t.Fatalf("starting local AWS endpoint: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("local AWS endpoint shut down: %v", err)
		}
		removeLeftovers(t, c, srv.EndpointID())
	})
	for srv.URL() == "" {
		time.Sleep(time.Millisecond)
	}
	return srv
}

// removeLeftovers removes the containers and networks this endpoint made
// that are still there (for instance when a test stopped the endpoint with
// containers running).
func removeLeftovers(t testing.TB, c localaws.Config, id string) {
	ctx := context.Background()
	f := filters.NewArgs(filters.Arg("label", "slipway.localaws.endpoint="+id))
	cs, err := c.Docker.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		t.Logf("listing leftover containers: %v", err)
		return
	}
	for _, ct := range cs {
		_ = c.Docker.ContainerRemove(ctx, ct.ID, container.RemoveOptions{Force: true})
	}
	ns, err := c.Docker.NetworkList(ctx, network.ListOptions{Filters: f})
	if err == nil {
		for _, n := range ns {
			_ = c.Docker.NetworkRemove(ctx, n.ID)
		}
	}
}

// Services serves a local AWS endpoint's API on an httptest server until
// the test ends and returns its URL. No training job runs and no Docker
// engine is needed, which is enough for the services that start no
// container: S3, CloudWatch Logs, STS, Secrets Manager and SSM. The
// endpoint keeps its data in dataDir, or in t.TempDir() when it is empty.
func Services(t testing.TB, dataDir string) string {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	srv, err := localaws.New(localaws.Config{DataDir: dataDir})
	if err != nil {
		t.Fatalf("making local AWS endpoint: %v", err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts.URL
}

// WithSecrets serves the endpoint's services (see Services) holding the
// given Secrets Manager secrets (name → string value) and SSM SecureString
// parameters (path → value), and returns an AWS config that reaches it.
func WithSecrets(t testing.TB, secrets, params map[string]string) aws.Config {
	t.Helper()
	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(Services(t, "")),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "secret", "")}
	ctx := context.Background()
	for name, v := range secrets {
		if _, err := secretsmanager.NewFromConfig(cfg).CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(v)}); err != nil {
			t.Fatalf("creating secret %s: %v", name, err)
		}
	}
	for path, v := range params {
		if _, err := ssm.NewFromConfig(cfg).PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(path), Value: aws.String(v), Type: ssmtypes.ParameterTypeSecureString}); err != nil {
			t.Fatalf("putting parameter %s: %v", path, err)
		}
	}
	return cfg
}

package sagemaker_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/slipway-ml/slipway/internal/bench"
)

// TestMain gives the SDK's default chain fixed credentials and no shared
// profile, so that the runner under test resolves them as in production
// without touching the machine's AWS setup. Started again by
// BenchmarkTrackJobs, this binary is the measured agent instead.
func TestMain(m *testing.M) {
	bench.RunAgentIfAsked()
	dir, err := os.MkdirTemp("", "slipway-sagemaker-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	empty := filepath.Join(dir, "empty")
	_ = os.WriteFile(empty, nil, 0o600)
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIDLOCAL", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "",
		"AWS_CONFIG_FILE": empty, "AWS_SHARED_CREDENTIALS_FILE": empty, "AWS_PROFILE": "",
		"AWS_REGION": "", "AWS_DEFAULT_REGION": "", "AWS_ENDPOINT_URL": "", "AWS_EC2_METADATA_DISABLED": "true",
	} {
		os.Setenv(k, v)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

package cli

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/slipway-ml/slipway/internal/config"
	"github.com/slipway-ml/slipway/internal/dockertest"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/localaws/localawstest"
)

// scrape reads url's /metrics.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatalf("scraping: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: got %s, want 200", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// sample returns the value of the series of family name with labels (pairs
// of name and value): a counter's or gauge's value, a histogram's count. A
// missing series reads 0.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if got[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return 0
}

// TestMetricsAfterRealJobs runs jobs through the in-process stack, as
// `slipway up` does: two SageMaker jobs from the same code on the local AWS
// endpoint (the first builds and pushes its image, the second finds it), a
// local process that fails and one that is canceled while it runs. The
// server's /metrics then shows each family with its labels and values. The
// metrics are the process's, so the build and AWS figures are compared
// with a scrape taken before.
func TestMetricsAfterRealJobs(t *testing.T) {
	cli := dockertest.Client(t)
	base := dockertest.BaseImage(t, cli)
	local := localawstest.Start(t)
	for k, v := range map[string]string{"AWS_ENDPOINT_URL": local.URL(), "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"} {
		t.Setenv(k, v)
	}
	url := setupWith(t, &config.Agent{MaxJobs: 2, Builder: config.Builder{Type: "docker"}})
	before := scrape(t, url)
	body := `{"RoleArn": "arn:aws:iam::000000000000:role/R", "EcrRepoName": "slipway-metrics",
	  "OutputDataConfig": {"S3OutputPath": "s3://metrics/out"},
	  "ResourceConfig": {"InstanceType": "ml.m4.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 2},
	  "StoppingCondition": {"MaxRuntimeInSeconds": 600}}`
	if code, _, stderr := run(t, url, "queue", "create", "metrics-sm", "--resource", "sagemaker", "--config", body); code != 0 {
		t.Fatalf("queue create: exit %d: %s", code, stderr)
	}
	if code, _, stderr := run(t, url, "queue", "create", "metrics-lp", "--resource", "local-process"); code != 0 {
		t.Fatalf("queue create: exit %d: %s", code, stderr)
	}
	dir := project(t, base, "echo trained\n")
	for i := range 2 {
		if code, stdout, stderr := run(t, url, "launch", "-q", "metrics-sm", "--dir", dir, "--follow"); code != 0 {
			t.Fatalf("launch %d on sagemaker: exit %d, stdout %q, stderr %q", i, code, stdout, stderr)
		}
	}
	if code, _, _ := run(t, url, "launch", "-q", "metrics-lp", "--entrypoint", "false", "--follow"); code == 0 {
		t.Fatal("launch false: exit 0, want the job's failure")
	}
	c := clientFor(t, url)
	code, stdout, stderr := run(t, url, "launch", "-q", "metrics-lp", "--entrypoint", "sleep 300")
	if code != 0 {
		t.Fatalf("launch sleep: exit %d: %s", code, stderr)
	}
	id := strings.TrimSpace(strings.SplitN(stdout, "\n", 2)[0])
	waitJob(t, c, id, "running", func(j job.Job) bool { return j.State == job.Running })

	during := scrape(t, url)
	for _, tt := range []struct {
		state job.State
		want  float64
	}{{job.Running, 1}, {job.Queued, 0}, {job.Claimed, 0}} {
		if got := sample(during, "slipway_queue_jobs", "queue", "metrics-lp", "state", string(tt.state)); got != tt.want {
			t.Errorf("slipway_queue_jobs{queue=metrics-lp,state=%s}: got %v, want %v", tt.state, got, tt.want)
		}
	}
	if got := sample(during, "slipway_queue_jobs", "queue", "metrics-sm", "state", "queued"); got != 0 {
		t.Errorf("slipway_queue_jobs{queue=metrics-sm,state=queued}: got %v, want 0", got)
	}

	if code, _, stderr := run(t, url, "job", "cancel", id); code != 0 {
		t.Fatalf("job cancel: exit %d: %s", code, stderr)
	}
	ended := waitJob(t, c, id, "ended", func(j job.Job) bool { return j.State.Terminal() })
	after := scrape(t, url)

	delta := func(name string, labels ...string) float64 {
		return sample(after, name, labels...) - sample(before, name, labels...)
	}
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"slipway_job_outcomes_total", []string{"queue", "metrics-sm", "state", "finished"}, 2},
		{"slipway_job_outcomes_total", []string{"queue", "metrics-lp", "state", "failed"}, 1},
		{"slipway_job_outcomes_total", []string{"queue", "metrics-lp", "state", string(ended.State)}, 1},
		{"slipway_claim_latency_seconds", []string{"queue", "metrics-sm"}, 2},
		{"slipway_claim_latency_seconds", []string{"queue", "metrics-lp"}, 2},
		{"slipway_queue_jobs", []string{"queue", "metrics-lp", "state", "running"}, 0},
		{"slipway_build_duration_seconds", []string{"builder", "docker", "result", "built"}, 1},
		{"slipway_build_duration_seconds", []string{"builder", "docker", "result", "cached"}, 1},
		{"slipway_build_cache_hits_total", []string{"builder", "docker"}, 1},
		{"slipway_aws_api_calls_total", []string{"service", "SageMaker", "operation", "CreateTrainingJob"}, 2},
	}
	for _, ck := range checks {
		if got := delta(ck.name, ck.labels...); got != ck.want {
			t.Errorf("%s%v: got %v more than before, want %v", ck.name, ck.labels, got, ck.want)
		}
	}
	if got := delta("slipway_aws_api_calls_total", "service", "SageMaker", "operation", "DescribeTrainingJob"); got < 2 {
		t.Errorf("slipway_aws_api_calls_total{SageMaker,DescribeTrainingJob}: got %v more than before, want at least 2", got)
	}
	if after["go_goroutines"] == nil {
		t.Error("go_goroutines: missing, want the Go runtime's metrics beside Slipway's")
	}
}

// TestAgentMetricsAddr serves the process's metrics as `agent
// --metrics-addr` does, and stops when its context ends.
func TestAgentMetricsAddr(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	addr, err := serveMetrics(ctx, "127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	fams := scrape(t, "http://"+addr)
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("agent /metrics: no go_goroutines, want the runtime's metrics")
	}
	if _, ok := fams["slipway_queue_jobs"]; ok {
		t.Error("agent /metrics: got slipway_queue_jobs, want none (an agent has no store)")
	}
	cancel()
	if _, err := serveMetrics(context.Background(), "not an address", slog.New(slog.DiscardHandler)); err == nil {
		t.Error("serveMetrics on a bad address: no error, want one")
	}
}

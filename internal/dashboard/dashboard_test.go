package dashboard_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/config"
	"github.com/slipway-ml/slipway/internal/dashboard"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
	"github.com/slipway-ml/slipway/internal/store/sqlite"
)

var _ dashboard.Reader = (*sqlite.Store)(nil)
var _ dashboard.Reader = (store.Store)(nil)

const (
	arn     = "arn:aws:sagemaker:eu-west-1:123456789012:training-job/j-abc-a1"
	heldARN = "arn:aws:sagemaker:eu-west-1:123456789012:training-job/j-held-a1"
)

// fixture is a store holding a ready sagemaker queue with one job an agent
// holds (running, with logs and an ARN), a queue not ready, and a CPU queue
// with one job waiting; and the dashboard over it.
type fixture struct {
	st   *sqlite.Store
	url  string
	held job.Job
	wait job.Job
}

func setup(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sm := `{"RoleArn": "arn:aws:iam::123456789012:role/SageMaker", "OutputDataConfig": {"S3OutputPath": "s3://out/p"},
		"ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
		"StoppingCondition": {"MaxRuntimeInSeconds": 600}}`
	for _, q := range []job.Queue{
		{Name: "sm", Resource: job.SageMaker, Config: json.RawMessage(sm)},
		{Name: "sm-draft", Resource: job.SageMaker, Config: json.RawMessage(config.DefaultSageMakerQueue)},
		{Name: "cpu", Resource: job.LocalProcess},
	} {
		if _, err := st.CreateQueue(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.RegisterAgent(ctx, job.Agent{ID: "ag-1", Name: "trainer-box", Queues: []string{"sm"}, MaxJobs: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RegisterAgent(ctx, job.Agent{ID: "ag-2", Name: "idle-box", Queues: []string{"*"}, MaxJobs: 1}); err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st}
	if f.held, err = st.Enqueue(ctx, job.Job{ID: "j-held", Queue: "sm", Spec: job.Spec{Image: "r/train:1", RunConfig: json.RawMessage(`{"lr": 0.1}`)}}, nil); err != nil {
		t.Fatal(err)
	}
	c, err := st.Claim(ctx, store.ClaimRequest{Agent: "ag-1", Queues: []string{"sm"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []store.Update{
		{To: job.Submitting, Reason: "submitting"},
		{To: job.Running, Reason: "Training", ExternalID: "j-held-a1", Outputs: map[string]string{"training_job_arn": heldARN}},
	} {
		u.JobID, u.Token, u.Actor = c.ID, c.Lease.Token, "ag-1"
		if _, err := st.Transition(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	lines := []job.LogLine{{Stream: "slipway", Text: "SageMaker: Training: Downloading the training image"}, {Stream: "stdout", Text: "epoch 1 <loss=0.5>"}}
	if err := st.AppendLogs(ctx, c.ID, c.Lease.Token, store.Holder{}, lines); err != nil {
		t.Fatal(err)
	}
	if f.wait, err = st.Enqueue(ctx, job.Job{ID: "j-wait", Queue: "cpu", Spec: job.Spec{Entrypoint: []string{"true"}}}, nil); err != nil {
		t.Fatal(err)
	}
	h, err := dashboard.New(dashboard.Config{Store: st, Logger: slog.New(slog.NewTextHandler(tWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	f.url = hs.URL
	return f
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// section returns the HTML from the element with marker to the end of its table.
func section(page, marker string) string {
	i := strings.Index(page, marker)
	if i < 0 {
		return ""
	}
	s := page[i:]
	if j := strings.Index(s, "</tr>"); j >= 0 {
		s = s[:j]
	}
	return s
}

func TestOverviewShowsQueuesAndAgents(t *testing.T) {
	t.Parallel()
	f := setup(t)
	code, page := get(t, f.url+"/")
	if code != http.StatusOK {
		t.Fatalf("GET /: got %d, want 200", code)
	}
	tests := []struct{ row, want string }{
		{`data-queue="sm"`, "<span class=\"good\">yes</span>"},
		{`data-queue="sm"`, "trainer-box"},
		{`data-queue="sm"`, "idle-box"},
		{`data-queue="sm-draft"`, "no: fill RoleArn, OutputDataConfig.S3OutputPath"},
		{`data-queue="sm-draft"`, "idle-box"},
		{`data-queue="cpu"`, `state=queued">1</a>`},
		{`data-agent="ag-1"`, `href="/jobs/j-held"`},
		{`data-agent="ag-2"`, "no limit"},
	}
	tests[7].want = "<td>1</td>" // ag-2's max jobs
	for _, tt := range tests {
		if row := section(page, tt.row); !strings.Contains(row, tt.want) {
			t.Errorf("overview row %s: got %q, want it to contain %q", tt.row, row, tt.want)
		}
	}
	if row := section(page, `data-queue="sm"`); !strings.Contains(row, "<td>1</td>") {
		t.Errorf("queue sm: got %q, want 1 running", row)
	}
}

func TestJobPageShowsTimelineRequestConsoleAndLogs(t *testing.T) {
	t.Parallel()
	f := setup(t)
	code, page := get(t, f.url+"/jobs/j-held")
	if code != http.StatusOK {
		t.Fatalf("GET /jobs/j-held: got %d, want 200", code)
	}
	for _, want := range []string{
		`href="https://eu-west-1.console.aws.amazon.com/sagemaker/home?region=eu-west-1#/jobs/j-held-a1"`,
		`&#34;TrainingJobName&#34;: &#34;j-held-a1&#34;`, // the request, escaped
		`&#34;TrainingImage&#34;: &#34;r/train:1&#34;`,
		"held by <code>ag-1</code>",
		"<th>training_job_arn</th>",
		"epoch 1 &lt;loss=0.5&gt;", // logs, escaped
		"==> SageMaker: Training: Downloading the training image",
		`data-after="2"`,
		`id="state" class="state s-running">running</span>`,
		"Attempt 1",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("job page lacks %q", want)
		}
	}
	for _, st := range []string{"queued", "claimed", "submitting", "running"} {
		if !strings.Contains(page, `<span class="state s-`+st+`">`+st+`</span> <span class="actor">`) {
			t.Errorf("timeline lacks the %s event", st)
		}
	}
}

func TestJobsFilter(t *testing.T) {
	t.Parallel()
	f := setup(t)
	tests := []struct {
		query      string
		want, lack []string
	}{
		{"", []string{"j-held", "j-wait"}, nil},
		{"?queue=cpu", []string{"j-wait"}, []string{`data-job="j-held"`}},
		{"?state=running", []string{"j-held"}, []string{`data-job="j-wait"`}},
		{"?queue=cpu&state=running", nil, []string{`data-job="j-held"`, `data-job="j-wait"`}},
	}
	for _, tt := range tests {
		code, page := get(t, f.url+"/jobs"+tt.query)
		if code != http.StatusOK {
			t.Fatalf("GET /jobs%s: got %d, want 200", tt.query, code)
		}
		for _, w := range tt.want {
			if !strings.Contains(page, `data-job="`+w+`"`) {
				t.Errorf("/jobs%s: lacks job %s", tt.query, w)
			}
		}
		for _, l := range tt.lack {
			if strings.Contains(page, l) {
				t.Errorf("/jobs%s: shows %s, want it filtered out", tt.query, l)
			}
		}
	}
}

func TestErrorsAndAssets(t *testing.T) {
	t.Parallel()
	f := setup(t)
	tests := []struct {
		path string
		code int
		want string
	}{
		{"/jobs/j-nope", http.StatusNotFound, "not found"},
		{"/queues/nope", http.StatusNotFound, "not found"},
		{"/jobs?state=napping", http.StatusBadRequest, "napping"},
		{"/nowhere", http.StatusNotFound, ""},
		{"/ui/static/app.js", http.StatusOK, "/v1/jobs/"},
		{"/ui/static/style.css", http.StatusOK, "pre#log"},
		{"/queues/sm-draft", http.StatusOK, "slipway queue update sm-draft"},
		{"/agents", http.StatusOK, "trainer-box"},
	}
	for _, tt := range tests {
		code, body := get(t, f.url+tt.path)
		if code != tt.code || !strings.Contains(body, tt.want) {
			t.Errorf("GET %s: got %d %.80q, want %d containing %q", tt.path, code, body, tt.code, tt.want)
		}
	}
}

func TestPagesLoadNothingFromElsewhere(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, p := range []string{"/", "/jobs", "/jobs/j-held", "/agents", "/queues/sm"} {
		_, page := get(t, f.url+p)
		for _, attr := range []string{`src="http`, `href="//`, `src="//`, `<link rel="stylesheet" href="http`} {
			if strings.Contains(page, attr) {
				t.Errorf("%s loads %s…: want every asset from this server", p, attr)
			}
		}
	}
}

func TestConsoleURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ arn, name, want string }{
		{arn, "", "https://eu-west-1.console.aws.amazon.com/sagemaker/home?region=eu-west-1#/jobs/j-abc-a1"},
		{arn, "other", "https://eu-west-1.console.aws.amazon.com/sagemaker/home?region=eu-west-1#/jobs/j-abc-a1"},
		{"arn:aws:sagemaker:us-east-2:1:training-job", "n1", "https://us-east-2.console.aws.amazon.com/sagemaker/home?region=us-east-2#/jobs/n1"},
		{"", "n1", ""},
		{"arn:aws:s3:::bucket", "n1", ""},
		{"arn:aws:sagemaker:evil.com/x:1:training-job/n", "", ""},
	}
	for _, tt := range tests {
		if got := dashboard.ConsoleURL(tt.arn, tt.name); got != tt.want {
			t.Errorf("ConsoleURL(%q, %q): got %q, want %q", tt.arn, tt.name, got, tt.want)
		}
	}
}

// FuzzConsoleURL: whatever the ARN says, the link goes to the console's
// host of a real-looking region, never elsewhere.
func FuzzConsoleURL(f *testing.F) {
	f.Add(arn, "name")
	f.Add("arn:aws:sagemaker:a@b:1:training-job/x", "")
	f.Fuzz(func(t *testing.T, a, name string) {
		u := dashboard.ConsoleURL(a, name)
		if u == "" {
			return
		}
		host, _, _ := strings.Cut(strings.TrimPrefix(u, "https://"), "/")
		region, ok := strings.CutSuffix(host, ".console.aws.amazon.com")
		if !strings.HasPrefix(u, "https://") || !ok || strings.ContainsAny(region, ".@:/?#") {
			t.Fatalf("ConsoleURL(%q, %q) = %q: want a link to REGION.console.aws.amazon.com", a, name, u)
		}
	})
}

// tWriter sends the dashboard's logs to the test's log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

package bench

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMain lets the footprint start this test binary again as its agent
// process (see RunAgentIfAsked).
func TestMain(m *testing.M) {
	RunAgentIfAsked()
	os.Exit(m.Run())
}

func TestParseSamples(t *testing.T) {
	t.Parallel()
	page := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 27
go_memstats_heap_inuse_bytes 4.194304e+06
slipway_aws_api_calls_total{op="DescribeTrainingJob"} 12
`
	got, err := parseSamples(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	if got["go_goroutines"] != 27 || got["go_memstats_heap_inuse_bytes"] != 4194304 {
		t.Errorf("got %v, want go_goroutines 27 and go_memstats_heap_inuse_bytes 4194304", got)
	}
	if len(got) != 2 {
		t.Errorf("got %d samples, want 2 (labelled samples skipped)", len(got))
	}
}

func TestTailBufferKeepsTheEnd(t *testing.T) {
	t.Parallel()
	b := &tailBuffer{max: 5}
	b.Write([]byte("abc"))
	b.Write([]byte("defg"))
	if got := b.String(); got != "cdefg" {
		t.Errorf("got %q, want %q", got, "cdefg")
	}
}

func TestStandInListsJobsModifiedAfter(t *testing.T) {
	t.Parallel()
	s := &StandIn{jobs: map[string]time.Time{}}
	s.Reset()
	t0 := time.Unix(1_700_000_000, 0)
	s.jobs["a"], s.jobs["b"], s.jobs["c"] = t0, t0.Add(2*time.Second), t0.Add(2*time.Second)
	list := func(body string) map[string]any {
		t.Helper()
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		req.Header.Set("X-Amz-Target", "SageMaker.ListTrainingJobs")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || rec.Code != http.StatusOK {
			t.Fatalf("ListTrainingJobs %s: %d %s", body, rec.Code, rec.Body)
		}
		return out
	}
	names := func(out map[string]any) []string {
		var ns []string
		for _, s := range out["TrainingJobSummaries"].([]any) {
			ns = append(ns, s.(map[string]any)["TrainingJobName"].(string))
		}
		return ns
	}
	first := list(`{"LastModifiedTimeAfter": 1700000001, "MaxResults": 1}`)
	if got := names(first); !slices.Equal(got, []string{"b"}) || first["NextToken"] != "1" {
		t.Errorf("first page: got %v, token %v; want [b], token 1", got, first["NextToken"])
	}
	second := list(`{"LastModifiedTimeAfter": 1700000001, "MaxResults": 1, "NextToken": "1"}`)
	if got := names(second); !slices.Equal(got, []string{"c"}) || second["NextToken"] != nil {
		t.Errorf("second page: got %v, token %v; want [c] and no token", got, second["NextToken"])
	}
	if got := names(list(`{}`)); len(got) != 3 {
		t.Errorf("no filter: got %v, want the 3 jobs", got)
	}
}

package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/bench"
)

// TestBenchCompare compares two saved reports as a user would, as a table
// and as JSON, and refuses a file that is not a report, naming it.
func TestBenchCompare(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, rep bench.Report) string {
		path := filepath.Join(dir, name)
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := rep.WriteJSON(f); err != nil {
			t.Fatal(err)
		}
		return path
	}
	before := write("before.json", bench.Report{Results: []bench.Result{
		{Measure: "dispatch", Case: "enqueue", Unit: "ms", Median: 10},
		{Measure: "throughput", Case: "sqlite, 4 agents", Unit: "jobs/s", Median: 1000},
	}})
	after := write("after.json", bench.Report{Results: []bench.Result{
		{Measure: "dispatch", Case: "enqueue", Unit: "ms", Median: 5},
		{Measure: "throughput", Case: "sqlite, 4 agents", Unit: "jobs/s", Median: 900},
	}})

	code, stdout, stderr := run(t, "", "bench", "compare", before, after)
	if code != 0 || !strings.Contains(stdout, "2.00x better") || !strings.Contains(stdout, "0.9x (worse)") {
		t.Errorf("bench compare: exit %d, stdout %q, stderr %q; want 2.00x better and 0.9x (worse)", code, stdout, stderr)
	}

	code, stdout, _ = run(t, "", "-o", "json", "bench", "compare", before, after)
	var c bench.Comparison
	if err := json.Unmarshal([]byte(stdout), &c); code != 0 || err != nil {
		t.Fatalf("bench compare -o json: exit %d, %v, stdout %q", code, err, stdout)
	}
	if len(c.Changes) != 2 || c.Changes[0].Factor != 2 || c.Changes[1].Factor != 0.9 {
		t.Errorf("bench compare -o json: got %+v, want factors 2 and 0.9", c.Changes)
	}

	notReport := filepath.Join(dir, "notes.json")
	if err := os.WriteFile(notReport, []byte(`{"hello": "world"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = run(t, "", "bench", "compare", before, notReport)
	if code != 2 || !strings.Contains(stderr, "notes.json") || !strings.Contains(stderr, "results: none") {
		t.Errorf("bench compare with a file that is no report: exit %d, stderr %q; want exit 2 naming the file and what is missing", code, stderr)
	}
}

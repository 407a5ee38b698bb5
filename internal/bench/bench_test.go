package bench

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in          []float64
		median, p99 float64
	}{
		{[]float64{5}, 5, 5},
		{[]float64{3, 1, 2}, 2, 3},
		{[]float64{10, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 5, 10},
	} {
		got := summarize(Result{}, tc.in)
		if got.N != len(tc.in) || got.Median != tc.median || got.P99 != tc.p99 {
			t.Errorf("summarize(%v) = n %d, median %v, p99 %v; want n %d, median %v, p99 %v",
				tc.in, got.N, got.Median, got.P99, len(tc.in), tc.median, tc.p99)
		}
	}
	if got := summarize(Result{}, nil); got.N != 0 || got.Median != 0 {
		t.Errorf("summarize(nil) = %+v, want zero figures", got)
	}
}

func TestCompare(t *testing.T) {
	t.Parallel()
	lat := compare(Result{Median: 10}, 5000, "ref", true)
	if lat.Ratio != 500 {
		t.Errorf("latency 10 vs reference 5000: ratio %v, want 500", lat.Ratio)
	}
	tput := compare(Result{Median: 460}, 46000, "ref", false)
	if tput.Ratio != 0.01 {
		t.Errorf("throughput 460 vs reference 46000: ratio %v, want 0.01", tput.Ratio)
	}
}

func TestWriteTable(t *testing.T) {
	t.Parallel()
	r := Report{Results: []Result{
		target(compare(summarize(Result{Measure: "dispatch", Case: "c1", Unit: "ms", Note: "a note"}, []float64{12, 14}), 5000, "W&B", true), "p99 < 50 ms", true),
		skipped("rebuild", "docker", "ms", "no Docker engine"),
	}}
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"MEDIAN", "P99", "dispatch", "417x", "yes", "skipped", "rebuild docker: skipped: no Docker engine", "a note"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestValidateOnly(t *testing.T) {
	t.Parallel()
	if err := ValidateOnly([]string{"dispatch", "rebuild"}); err != nil {
		t.Errorf("ValidateOnly(dispatch, rebuild) = %v, want nil", err)
	}
	if err := ValidateOnly([]string{"latency"}); err == nil || !strings.Contains(err.Error(), "latency") {
		t.Errorf("ValidateOnly(latency) = %v, want an error naming it", err)
	}
}

func TestThroughput(t *testing.T) {
	t.Parallel()
	r, err := Throughput(context.Background(), ThroughputConfig{Agents: 2, MaxJobs: 2, Jobs: 40}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.JobsPerSecond <= 0 {
		t.Errorf("rate %v jobs/s, want more than 0", r.JobsPerSecond)
	}
	// Each job costs some CPU: at least its requests and commits.
	if r.CPUPerJob <= 0 {
		t.Errorf("CPU per job %v, want more than 0", r.CPUPerJob)
	}
}

func TestStoreThroughput(t *testing.T) {
	t.Parallel()
	// StoreThroughput fails unless every job it enqueued finished.
	r, err := StoreThroughput(context.Background(), ThroughputConfig{Agents: 3, MaxJobs: 4, Jobs: 50})
	if err != nil {
		t.Fatal(err)
	}
	if r.JobsPerSecond <= 0 || r.CPUPerJob <= 0 {
		t.Errorf("got %v jobs/s and %v CPU per job, want both more than 0", r.JobsPerSecond, r.CPUPerJob)
	}
}

// BenchmarkStoreThroughput is the store's share of BenchmarkThroughput
// (internal/agent): 16 workers claim and move b.N jobs straight on the
// store, SQLite and, when SLIPWAY_TEST_POSTGRES names a database,
// PostgreSQL.
func BenchmarkStoreThroughput(b *testing.B) {
	dsns := [][2]string{{"sqlite", ""}}
	if pg := os.Getenv("SLIPWAY_TEST_POSTGRES"); pg != "" {
		dsns = append(dsns, [2]string{"postgres", pg})
	}
	for _, d := range dsns {
		b.Run(d[0], func(b *testing.B) {
			r, err := StoreThroughput(context.Background(), ThroughputConfig{DSN: d[1], Agents: 16, Jobs: max(b.N, 16)})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(r.JobsPerSecond, "jobs/s")
			b.ReportMetric(float64(r.CPUPerJob)/float64(time.Microsecond), "cpu-µs/job")
		})
	}
}

// TestFootprint runs the footprint measure small and fast: every job is
// tracked, the runner's calls reach the stand-in, and the account
// limits throttle what goes past them.
func TestFootprint(t *testing.T) {
	t.Parallel()
	f, err := MeasureFootprint(context.Background(), FootprintConfig{Jobs: 20, Window: 2 * time.Second,
		PollMin: 100 * time.Millisecond, PollMax: 200 * time.Millisecond, LogPoll: 100 * time.Millisecond}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Calls["DescribeTrainingJob"]; got < 20 {
		t.Errorf("DescribeTrainingJob calls in 2s at 100-200ms polls for 20 jobs: got %d, want at least 20", got)
	}
	if got := f.PerJobPerMinute("DescribeLogStreams"); got <= 0 {
		t.Errorf("DescribeLogStreams per job per minute: got %v, want more than 0", got)
	}
	if f.IdleMB <= 0 || f.TrackingMB <= 0 {
		t.Errorf("resident memory idle %v MB, tracking %v MB: want both above 0", f.IdleMB, f.TrackingMB)
	}
	if f.Calls["CreateTrainingJob"] != 0 {
		t.Errorf("CreateTrainingJob calls once every job was tracked: got %d, want 0", f.Calls["CreateTrainingJob"])
	}
	// The agent runs its code throughout: some of its executable's pages
	// are accessed in the window, and no more than are resident.
	if f.TouchedFileMB <= 0 || f.TouchedFileMB > f.FileMB {
		t.Errorf("executable's pages accessed over the window: %.1f MB of %.1f MB resident; want some, and no more than resident", f.TouchedFileMB, f.FileMB)
	}
}

func TestStandInThrottles(t *testing.T) {
	t.Parallel()
	s, err := StartStandIn()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.Limit("CreateTrainingJob", 1)
	admitted := 0
	for range 3 {
		if s.admit("CreateTrainingJob") {
			admitted++
		}
	}
	// One second of burst at 1/s: the first call passes, the next two
	// within the same instant are throttled.
	if admitted != 1 || s.Throttled()["CreateTrainingJob"] != 2 {
		t.Errorf("3 calls at once under 1/s: got %d admitted, %d throttled; want 1 and 2", admitted, s.Throttled()["CreateTrainingJob"])
	}
	if !s.admit("DescribeTrainingJob") || s.Calls()["DescribeTrainingJob"] != 1 {
		t.Errorf("an unlimited op was not admitted and counted once: calls %v", s.Calls())
	}
}

func TestRebuildOCI(t *testing.T) {
	t.Parallel()
	r, err := MeasureRebuild(context.Background(), "oci", 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if r.UnchangedBlobs != 0 || r.UnchangedBytes != 0 || len(r.Unchanged) != 2 {
		t.Errorf("2 unchanged relaunches: %d timings, %d blobs, %d bytes uploaded; want 2 timings and nothing uploaded",
			len(r.Unchanged), r.UnchangedBlobs, r.UnchangedBytes)
	}
	for i, n := range r.ChangedBlobs {
		if n != 2 {
			t.Errorf("one-file change %d uploaded %d blobs, want 2 (the code layer and the config)", i, n)
		}
	}
}

func TestRebuildDocker(t *testing.T) {
	t.Parallel()
	r, err := MeasureRebuild(context.Background(), "docker", 1, 1)
	if errors.Is(err, errNoDocker) && !requireDocker() {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if r.UnchangedBlobs != 0 {
		t.Errorf("unchanged relaunch uploaded %d blobs, want 0", r.UnchangedBlobs)
	}
	if len(r.ChangedBlobs) != 1 || r.ChangedBlobs[0] != 2 {
		t.Errorf("one-file change uploaded %v blobs, want [2] (the COPY layer and the config)", r.ChangedBlobs)
	}
}

func TestDispatch(t *testing.T) {
	t.Parallel()
	d, err := MeasureDispatch(context.Background(), 3, Options{})
	if errors.Is(err, errNoDocker) && !requireDocker() {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(d.ToCreate) != 3 || len(d.ToClaim) != 3 {
		t.Fatalf("got %d CreateTrainingJob and %d claim timings, want 3 each", len(d.ToCreate), len(d.ToClaim))
	}
	for i := range d.ToCreate {
		if d.ToClaim[i] <= 0 || d.ToCreate[i] < d.ToClaim[i] {
			t.Errorf("job %d: claimed after %v, CreateTrainingJob after %v; want 0 < claim <= create", i, d.ToClaim[i], d.ToCreate[i])
		}
	}
}

package bench

import (
	"bytes"
	"strings"
	"testing"
)

func TestCompareReports(t *testing.T) {
	t.Parallel()
	base := Report{Machine: Machine{CPUs: 2, Date: "2026-11-28"}, Results: []Result{
		{Measure: "throughput", Case: "sqlite, 1 agent", Unit: "jobs/s", Median: 800},
		{Measure: "dispatch", Case: "enqueue", Unit: "ms", Median: 10},
		{Measure: "footprint", Case: "1000 jobs", Unit: "MB RSS", Median: 100},
		{Measure: "rebuild", Case: "oci", Unit: "ms", Median: 4},
		{Measure: "rebuild", Case: "docker", Unit: "ms", Skipped: "no Docker engine"},
		{Measure: "api-cost", Case: "old call", Unit: "calls/job/min", Median: 3},
	}}
	now := Report{Machine: Machine{CPUs: 2, Date: "2026-11-29"}, Results: []Result{
		{Measure: "throughput", Case: "sqlite, 1 agent", Unit: "jobs/s", Median: 1200},
		{Measure: "dispatch", Case: "enqueue", Unit: "ms", Median: 5},
		{Measure: "footprint", Case: "1000 jobs", Unit: "MB RSS", Median: 125},
		{Measure: "rebuild", Case: "oci", Unit: "ms", Median: 4.01},
		{Measure: "rebuild", Case: "docker", Unit: "ms", Median: 500},
		{Measure: "footprint", Case: "1000 jobs, anonymous", Unit: "MB RssAnon", Median: 35},
	}}
	c := Compare(base, now)
	want := []struct {
		measure, c, status string
		factor             float64
	}{
		{"throughput", "sqlite, 1 agent", "compared", 1.5},
		{"dispatch", "enqueue", "compared", 2},
		{"footprint", "1000 jobs", "compared", 0.8},
		{"rebuild", "oci", "compared", 4 / 4.01},
		{"rebuild", "docker", "skipped", 0},
		{"footprint", "1000 jobs, anonymous", "new", 0},
		{"api-cost", "old call", "gone", 0},
	}
	if len(c.Changes) != len(want) {
		t.Fatalf("changes: got %d, want %d: %+v", len(c.Changes), len(want), c.Changes)
	}
	for i, w := range want {
		got := c.Changes[i]
		if got.Measure != w.measure || got.Case != w.c || got.Status != w.status || got.Factor != w.factor {
			t.Errorf("change %d: got %s/%s %s %v, want %s/%s %s %v", i, got.Measure, got.Case, got.Status, got.Factor, w.measure, w.c, w.status, w.factor)
		}
	}
	var b bytes.Buffer
	if err := c.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"base machine: 2 CPUs", "now  machine: 2 CPUs", "1.50x better", "2.00x better", "0.8x (worse)", "same", "skipped", "new", "gone"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("table: no %q in\n%s", s, b.String())
		}
	}
}

func TestReadReport(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	rep := Report{Machine: Machine{CPUs: 2}, Results: []Result{{Measure: "dispatch", Case: "c", Unit: "ms", N: 3, Median: 5, P99: 9}}}
	if err := rep.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	got, err := ReadReport(&b)
	if err != nil {
		t.Fatalf("ReadReport of WriteJSON's output: %v", err)
	}
	if len(got.Results) != 1 || got.Results[0].P99 != 9 || got.Machine.CPUs != 2 {
		t.Errorf("read back: got %+v, want %+v", got, rep)
	}
	for in, want := range map[string]string{
		``:                                  "EOF",
		`[1, 2]`:                            "cannot unmarshal",
		`{"results": []}`:                   "results: none",
		`{"results": [{"case": "x"}]}`:      "results[0]: want a measure and a unit",
		`{"results": [{"measure": "m"}]}`:   "results[0]: want a measure and a unit",
		`{"machine": {"cpus": "two"}}`:      "cannot unmarshal",
		`{"results": [{"median": "fast"}]}`: "cannot unmarshal",
		`{"results": [{"measure": "m", "unit": "ms"}], `: "unexpected EOF",
	} {
		if _, err := ReadReport(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ReadReport(%q): got %v, want an error with %q", in, err, want)
		}
	}
}

func FuzzReadReport(f *testing.F) {
	f.Add(`{"machine": {"cpus": 2}, "results": [{"measure": "dispatch", "case": "c", "unit": "ms", "median": 5}]}`)
	f.Add(`{"results": [{"measure": "m"}]}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, in string) {
		rep, err := ReadReport(strings.NewReader(in))
		if err != nil {
			return
		}
		if len(rep.Results) == 0 {
			t.Fatalf("ReadReport(%q): no error and no results", in)
		}
		// A report read back compares with itself: every line the same.
		for _, ch := range Compare(rep, rep).Changes {
			if ch.Status == "compared" && ch.Factor != 0 && ch.Factor != 1 {
				t.Fatalf("a report against itself: %+v", ch)
			}
		}
	})
}

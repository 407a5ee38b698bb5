// Package bench measures what decides whether Slipway is ahead of the
// systems it replaces: dispatch latency, claim throughput, the agent's
// memory footprint, its SageMaker API cost and the cost of a rebuild. Each
// measurement is a function that `slipway bench` and the Go benchmarks in
// the measured packages both call, so the numbers in BENCHMARKS.md come
// from the same code either way.
//
// Everything runs on this machine: an in-process server on SQLite (or
// PostgreSQL), agents over the real HTTP API, the local AWS endpoint of
// internal/localaws, a stand-in SageMaker endpoint for the footprint (see
// StandIn), and go-containerregistry's registry for rebuilds.
package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is one line of the report.
type Result struct {
	// Measure names what was measured: "dispatch", "throughput", "footprint",
	// "api-cost", "rebuild".
	Measure string `json:"measure"`
	// Case says under what conditions: "sqlite, 4 agents", "1000 jobs".
	Case string `json:"case"`
	// Unit of Median, P99 and Reference: "ms", "jobs/s", "MB", "calls/job/min".
	Unit string `json:"unit"`
	// N is how many samples Median and P99 come from (1 for a single figure).
	N      int     `json:"n"`
	Median float64 `json:"median"`
	P99    float64 `json:"p99"`
	// Reference is the comparable figure of the system Slipway replaces
	// (RefName); 0 when there is none.
	Reference float64 `json:"reference,omitempty"`
	RefName   string  `json:"reference_name,omitempty"`
	// Ratio is how many times better Median is than Reference (>1 is
	// better, whichever way the unit runs); 0 without a reference.
	Ratio float64 `json:"ratio,omitempty"`
	// Target is the goal in words ("p99 < 50 ms"); Met says whether it was
	// reached, nil when there is no target.
	Target string `json:"target,omitempty"`
	Met    *bool  `json:"met,omitempty"`
	// Note explains how to read the figure.
	Note string `json:"note,omitempty"`
	// Skipped says why the measurement did not run; the figures are empty.
	Skipped string `json:"skipped,omitempty"`
}

// Report is every result of one run, with the machine it ran on.
type Report struct {
	Machine Machine   `json:"machine"`
	Started time.Time `json:"started"`
	Elapsed string    `json:"elapsed"`
	Results []Result  `json:"results"`
}

// Options says what to measure and how much. The zero value measures
// everything at the default (quick) size.
type Options struct {
	// Only limits the run to these measures (names as Result.Measure);
	// empty runs all.
	Only []string
	// Full runs the long versions: more samples, 10,000 tracked jobs.
	Full bool
	// Postgres is a PostgreSQL DSN; when set, throughput runs on it too.
	Postgres string
	// Logger receives progress notes. Default: discarded.
	Logger *slog.Logger
	// Progress, when set, is told which measure starts.
	Progress func(measure string)
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Progress == nil {
		o.Progress = func(string) {}
	}
	return o
}

// Measures lists the measures in the order Run takes them. The footprint
// goes first: the others leave garbage that would blur its resident memory.
var Measures = []string{"footprint", "dispatch", "throughput", "rebuild"}

// Run takes every measure asked for and returns the report. A measure
// that cannot run here (no Docker engine) is reported as skipped; Run
// fails only when a measure breaks.
func Run(ctx context.Context, o Options) (Report, error) {
	o = o.withDefaults()
	rep := Report{Machine: DescribeMachine(), Started: time.Now().UTC()}
	for _, m := range Measures {
		if len(o.Only) > 0 && !slices.Contains(o.Only, m) {
			continue
		}
		o.Progress(m)
		var rs []Result
		var err error
		switch m {
		case "footprint":
			rs, err = footprintMeasure(ctx, o)
		case "dispatch":
			rs, err = dispatchMeasure(ctx, o)
		case "throughput":
			rs, err = throughputMeasure(ctx, o)
		case "rebuild":
			rs, err = rebuildMeasure(ctx, o)
		}
		rep.Results = append(rep.Results, rs...)
		if err != nil {
			rep.Elapsed = time.Since(rep.Started).Round(time.Millisecond).String()
			return rep, fmt.Errorf("measuring %s: %w", m, err)
		}
	}
	rep.Elapsed = time.Since(rep.Started).Round(time.Millisecond).String()
	return rep, nil
}

// ValidateOnly checks names given to Options.Only.
func ValidateOnly(names []string) error {
	for _, n := range names {
		if !slices.Contains(Measures, n) {
			return fmt.Errorf("unknown measure %q: want one of %s", n, strings.Join(Measures, ", "))
		}
	}
	return nil
}

// WriteJSON writes the report as indented JSON.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report as a table a person reads, with the notes
// below it.
func (r Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "%s\n\n", r.Machine)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEASURE\tCASE\tN\tMEDIAN\tP99\tUNIT\tREFERENCE\tRATIO\tTARGET\tMET")
	var notes []string
	for _, res := range r.Results {
		if res.Skipped != "" {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t%s\t\t\t%s\tskipped\n", res.Measure, res.Case, res.Unit, res.Target)
			notes = append(notes, fmt.Sprintf("%s %s: skipped: %s", res.Measure, res.Case, res.Skipped))
			continue
		}
		ref, ratio := "", ""
		if res.Reference != 0 {
			ref = fmt.Sprintf("%s (%s)", num(res.Reference), res.RefName)
			ratio = fmt.Sprintf("%sx", num(res.Ratio))
		}
		met := ""
		if res.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*res.Met]
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", res.Measure, res.Case, res.N,
			num(res.Median), num(res.P99), res.Unit, ref, ratio, res.Target, met)
		if res.Note != "" {
			notes = append(notes, fmt.Sprintf("%s %s: %s", res.Measure, res.Case, res.Note))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
	}
	_, err := fmt.Fprintf(w, "\ntook %s\n", r.Elapsed)
	return err
}

// num prints a figure with about three significant digits.
func num(v float64) string {
	switch a := math.Abs(v); {
	case v == 0:
		return "0"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

// summarize fills N, Median and P99 of r from samples.
func summarize(r Result, samples []float64) Result {
	r.N = len(samples)
	if len(samples) == 0 {
		return r
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	r.Median = percentile(s, 50)
	r.P99 = percentile(s, 99)
	return r
}

// percentile returns the p-th percentile of sorted s, nearest rank.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// ms converts durations to milliseconds.
func ms(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d) / float64(time.Millisecond)
	}
	return out
}

// compare sets the reference and the ratio of r: lowerBetter for latency
// and memory, else higher is better.
func compare(r Result, ref float64, name string, lowerBetter bool) Result {
	r.Reference, r.RefName = ref, name
	switch {
	case r.Median == 0:
	case lowerBetter:
		r.Ratio = ref / r.Median
	default:
		r.Ratio = r.Median / ref
	}
	return r
}

// target sets the target of r and whether it was met.
func target(r Result, what string, met bool) Result {
	r.Target, r.Met = what, &met
	return r
}

// skipped is a result for a measure that could not run.
func skipped(measure, c, unit, why string) Result {
	return Result{Measure: measure, Case: c, Unit: unit, Skipped: why}
}

func plural(n int, one, many string) string {
	return fmt.Sprintf("%d %s", n, cmp.Or(map[bool]string{true: one}[n == 1], many))
}

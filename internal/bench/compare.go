package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Change is how one line of the report moved between two runs: the same
// measure and case, in the same unit.
type Change struct {
	Measure string `json:"measure"`
	Case    string `json:"case"`
	Unit    string `json:"unit"`
	// Base and Now are the medians of the two runs.
	Base float64 `json:"base"`
	Now  float64 `json:"now"`
	// Factor is how many times better Now is than Base, whichever way the
	// unit runs (above 1: better; 1.25 is a quarter better); 0 when it
	// cannot be said (a run lacks the line, a median is 0).
	Factor float64 `json:"factor,omitempty"`
	// Status is "compared", or why not: "new" (only in the later run),
	// "gone" (only in the base), "skipped" (skipped in either).
	Status string `json:"status"`
}

// Comparison is a run set against a base run of another version or machine.
type Comparison struct {
	Base    Machine  `json:"base_machine"`
	Now     Machine  `json:"now_machine"`
	Changes []Change `json:"changes"`
}

// ReadReport reads a report as `slipway bench --json` wrote it.
func ReadReport(r io.Reader) (Report, error) {
	var rep Report
	dec := json.NewDecoder(r)
	if err := dec.Decode(&rep); err != nil {
		return Report{}, fmt.Errorf("reading a report of slipway bench --json: %w", err)
	}
	if len(rep.Results) == 0 {
		return Report{}, errors.New("reading a report of slipway bench --json: results: none; want the output of slipway bench --json")
	}
	for i, res := range rep.Results {
		if res.Measure == "" || res.Unit == "" {
			return Report{}, fmt.Errorf("reading a report of slipway bench --json: results[%d]: want a measure and a unit", i)
		}
	}
	return rep, nil
}

// Compare sets every line of now against the same line of base (a line
// that appears more than once is matched in order), in the order of now,
// then the lines only base has.
func Compare(base, now Report) Comparison {
	key := func(r Result) string { return r.Measure + "\x00" + r.Case + "\x00" + r.Unit }
	before := make(map[string][]Result, len(base.Results))
	for _, r := range base.Results {
		before[key(r)] = append(before[key(r)], r)
	}
	c := Comparison{Base: base.Machine, Now: now.Machine}
	for _, r := range now.Results {
		ch := Change{Measure: r.Measure, Case: r.Case, Unit: r.Unit, Now: r.Median, Status: "compared"}
		k := key(r)
		if len(before[k]) == 0 {
			ch.Status = "new"
			c.Changes = append(c.Changes, ch)
			continue
		}
		b := before[k][0]
		before[k] = before[k][1:]
		ch.Base = b.Median
		if b.Skipped != "" || r.Skipped != "" {
			ch.Status = "skipped"
		} else {
			ch.Factor = factor(b.Median, r.Median, lowerIsBetter(r.Unit))
		}
		c.Changes = append(c.Changes, ch)
	}
	for _, r := range base.Results {
		k := key(r)
		if len(before[k]) > 0 && before[k][0] == r {
			before[k] = before[k][1:]
			c.Changes = append(c.Changes, Change{Measure: r.Measure, Case: r.Case, Unit: r.Unit, Base: r.Median, Status: "gone"})
		}
	}
	return c
}

// lowerIsBetter says which way a unit runs: rates ("jobs/s") are better
// higher; times, memory and call counts lower.
func lowerIsBetter(unit string) bool { return !strings.HasSuffix(unit, "/s") }

// factor is how many times better now is than base; 0 when a figure is 0.
func factor(base, now float64, lowerBetter bool) float64 {
	if base == 0 || now == 0 {
		return 0
	}
	if lowerBetter {
		return base / now
	}
	return now / base
}

// WriteTable writes the comparison as a table a person reads.
func (c Comparison) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "base %s\nnow  %s\n\n", c.Base, c.Now)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEASURE\tCASE\tUNIT\tBASE\tNOW\tCHANGE")
	for _, ch := range c.Changes {
		base, now, change := num(ch.Base), num(ch.Now), ch.Status
		switch ch.Status {
		case "new":
			base = "-"
		case "gone":
			now = "-"
		case "compared":
			change = describeFactor(ch.Factor)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ch.Measure, ch.Case, ch.Unit, base, now, change)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "\nCHANGE: how many times better now is than base, whichever way the unit runs (jobs/s higher, the rest lower).")
	return err
}

// describeFactor says a factor in words: "1.52x better", "0.80x (worse)".
func describeFactor(f float64) string {
	switch {
	case f == 0:
		return "-"
	case f >= 0.99 && f <= 1.01:
		return "same"
	case f > 1:
		return num(f) + "x better"
	}
	return num(f) + "x (worse)"
}

// WriteJSON writes the comparison as indented JSON.
func (c Comparison) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(c)
}

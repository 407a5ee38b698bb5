package cli

import (
	"cmp"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/bench"
)

// benchCmd is `slipway bench`: the measurements of internal/bench, as a
// table or as JSON.
func (a *app) benchCmd() *cobra.Command {
	var (
		full     bool
		jsonOut  bool
		postgres string
		only     []string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure dispatch latency, throughput, agent footprint, SageMaker API cost and rebuild cost",
		Long: `Measure what decides whether Slipway is ahead, on this machine, against things
it starts itself on loopback: an in-process server on SQLite (and PostgreSQL with
--postgres), agents over the HTTP API, the local AWS endpoint, a stand-in SageMaker
endpoint for the footprint, and a local OCI registry for rebuilds.

  dispatch    enqueue → CreateTrainingJob at the local AWS endpoint, idle agent (needs Docker)
  footprint   agent memory idle and tracking 1,000 SageMaker jobs (10,000 with --full),
              and its SageMaker/CloudWatch Logs calls per job per minute and throttles
  throughput  jobs claimed and finished per second with a no-op runner, 1, 4 and 16 agents
              of 8 and of 64 slots (max_jobs), and the store alone; each with the CPU a job costs
  rebuild     relaunch of unchanged code and a one-file change, oci and docker builders

Each line gives the median, the p99 and, where there is one, the reference and
the ratio to it (above 1: Slipway is ahead). Without flags it takes 2 to 3 minutes
on 2 cores; --full takes longer. A measure that needs Docker is skipped without it.`,
		Example: `  slipway bench
  slipway bench --only dispatch,throughput --json > bench.json
  slipway bench --full --postgres postgres://slipway:slipway@127.0.0.1:5432/bench`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bench.ValidateOnly(only); err != nil {
				return fmt.Errorf("%w: --only: %w", errUsage, err)
			}
			o := bench.Options{Only: only, Full: full, Postgres: cmp.Or(postgres, os.Getenv("SLIPWAY_TEST_POSTGRES")),
				Logger: slog.New(slog.DiscardHandler)}
			start := time.Now()
			o.Progress = func(m string) {
				fmt.Fprintf(a.stderr, "[%s] measuring %s...\n", time.Since(start).Round(time.Second), m)
			}
			rep, err := bench.Run(cmd.Context(), o)
			if jsonOut || a.output == "json" {
				if werr := rep.WriteJSON(a.stdout); werr != nil && err == nil {
					err = werr
				}
			} else if werr := rep.WriteTable(a.stdout); werr != nil && err == nil {
				err = werr
			}
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVar(&full, "full", false, "longer runs: more samples, 3 throughput runs of 10,000 jobs a case (else 1 of 5,000), 10,000 tracked jobs")
	f.BoolVar(&jsonOut, "json", false, "print the report as JSON (same as -o json)")
	f.StringVar(&postgres, "postgres", "", "PostgreSQL DSN to measure throughput on as well (default: $SLIPWAY_TEST_POSTGRES)")
	f.StringSliceVar(&only, "only", nil, "measure only these: dispatch, footprint, throughput, rebuild")
	cmd.AddCommand(a.benchCompareCmd())
	return cmd
}

// benchCompareCmd is `slipway bench compare`: two saved reports, line by
// line.
func (a *app) benchCompareCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "compare BASE.json NOW.json",
		Short: "Compare two reports of slipway bench --json, line by line",
		Long: `Compare two reports that slipway bench --json wrote (two versions, or two
machines): for each line measured in both, the two medians and how many times
better NOW is than BASE, whichever way the unit runs (jobs/s higher is better;
milliseconds, MB and calls lower). Lines only one report has are marked new or
gone; a line skipped in either is marked skipped. Nothing is measured.`,
		Example: `  slipway bench --json > before.json
  # ... build the new version ...
  slipway bench --json > after.json
  slipway bench compare before.json after.json`,
		Args: exactArgs(2, "BASE.json NOW.json"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var reps [2]bench.Report
			for i, path := range args {
				f, err := os.Open(path)
				if err != nil {
					return fmt.Errorf("%w: %w", errUsage, err)
				}
				reps[i], err = bench.ReadReport(f)
				f.Close()
				if err != nil {
					return fmt.Errorf("%w: %s: %w", errUsage, path, err)
				}
			}
			c := bench.Compare(reps[0], reps[1])
			if a.output == "json" {
				return c.WriteJSON(a.stdout)
			}
			return c.WriteTable(a.stdout)
		},
	}
}

package cli

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/durfmt"
	"github.com/slipway-ml/slipway/internal/job"
)

func (a *app) jobCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "List, describe, follow and cancel jobs",
	}
	cmd.AddCommand(a.jobListCmd(), a.jobDescribeCmd(), a.jobLogsCmd(), a.jobCancelCmd())
	return cmd
}

func (a *app) jobListCmd() *cobra.Command {
	var queue, state string
	var limit int
	cmd := &cobra.Command{
		Use:   "list [-q QUEUE] [--state STATE]",
		Short: "List jobs, newest first",
		Example: `  slipway job list -q train --state running
  slipway job list -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var st job.State
			if state != "" {
				var err error
				if st, err = job.ParseState(state); err != nil {
					return usageErr("--state: %v", err)
				}
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			js, err := c.Jobs(cmd.Context(), queue, st, limit)
			if err != nil {
				return friendly(err)
			}
			if a.json() {
				return a.printJSON(js)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tQUEUE\tSTATE\tPRIORITY\tATTEMPT\tAGE\tREASON")
			for _, j := range js {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", j.ID, j.Queue, j.State, j.Priority, j.Attempt,
					durfmt.Short(time.Since(j.CreatedAt)), truncate(j.Reason, 60))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&queue, "queue", "q", "", "only jobs of this queue")
	cmd.Flags().StringVar(&state, "state", "", "only jobs in this state (queued, running, finished, ...)")
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many jobs")
	return cmd
}

func (a *app) jobDescribeCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "describe ID",
		Short:   "Show a job, its lease and its events",
		Example: `  slipway job describe j-0123456789abcdef -o json`,
		Args:    exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			j, err := c.Job(cmd.Context(), args[0])
			if err != nil {
				return friendly(err)
			}
			if a.json() {
				return a.printJSON(j)
			}
			w := a.stdout
			fmt.Fprintf(w, "id:          %s\nqueue:       %s\nstate:       %s\nreason:      %s\nattempt:     %d\npriority:    %s\n",
				j.ID, j.Queue, j.State, j.Reason, j.Attempt, j.Priority)
			if j.Image != "" {
				fmt.Fprintf(w, "image:       %s\n", j.Image)
			}
			if j.ExternalID != "" {
				fmt.Fprintf(w, "external id: %s\n", j.ExternalID)
			}
			for _, k := range slices.Sorted(maps.Keys(j.Outputs)) {
				fmt.Fprintf(w, "output:      %s = %s\n", k, j.Outputs[k])
			}
			if j.Lease != nil {
				fmt.Fprintf(w, "lease:       agent %s, token %d, expires %s\n", j.Lease.Agent, j.Lease.Token, j.Lease.ExpiresAt.Local().Format(time.TimeOnly))
			}
			fmt.Fprintf(w, "created:     %s\nupdated:     %s\nevents:\n", j.CreatedAt.Local().Format(time.DateTime), j.UpdatedAt.Local().Format(time.DateTime))
			for _, e := range j.Events {
				fmt.Fprintf(w, "  %s  %-10s  attempt %d  by %-8s  %s\n", e.At.Local().Format("15:04:05.000"), e.To, e.Attempt, e.Actor, e.Reason)
			}
			return nil
		},
	}
}

func (a *app) jobLogsCmd() *cobra.Command {
	var follow bool
	var attempt int
	cmd := &cobra.Command{
		Use:   "logs ID [-f]",
		Short: "Print a job's logs; -f follows them until the job ends",
		Example: `  slipway job logs j-0123456789abcdef
  slipway job logs -f j-0123456789abcdef`,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if follow {
				return a.follow(cmd.Context(), c, args[0])
			}
			var after int64
			for {
				l, err := c.Logs(cmd.Context(), args[0], attempt, after, 0)
				if err != nil {
					return friendly(err)
				}
				for _, line := range l.Lines {
					a.printLine(line)
				}
				if len(l.Lines) == 0 {
					return nil
				}
				after = l.Next
			}
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow the logs and state changes until the job ends")
	cmd.Flags().IntVar(&attempt, "attempt", 0, "only this attempt's logs (default: every attempt)")
	return cmd
}

func (a *app) jobCancelCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a job: at once when queued, by stopping its run when it runs",
		Args:  exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			j, err := c.Cancel(cmd.Context(), args[0])
			if err != nil {
				return friendly(err)
			}
			if a.json() {
				return a.printJSON(j)
			}
			switch {
			case j.State == job.Canceled:
				fmt.Fprintf(a.stdout, "job %s canceled\n", j.ID)
			case j.State.Terminal():
				fmt.Fprintf(a.stdout, "job %s had already ended: %s\n", j.ID, j.State)
			default:
				fmt.Fprintf(a.stdout, "job %s: cancel requested; its agent is stopping it (%s)\n", j.ID, j.State)
			}
			return nil
		},
	}
}

// follow streams a job's logs to stdout and its state changes to stderr
// until it ends, and fails with errJobEnded unless it finished.
func (a *app) follow(ctx context.Context, c *client.Client, id string) error {
	var after, seenEvent int64
	var last job.State
	live := newLiveLine(a.stderr)
	defer live.done()
	for {
		l, err := c.Logs(ctx, id, 0, after, 20*time.Second)
		if err != nil {
			if client.IsUnreachable(err) && ctx.Err() == nil {
				fmt.Fprintf(a.stderr, "==> server unreachable (%v); retrying\n", err)
				select {
				case <-time.After(time.Second):
				case <-ctx.Done():
				}
				continue
			}
			return friendly(err)
		}
		for _, line := range l.Lines {
			a.printLiveLine(live, line)
		}
		after = l.Next
		if l.State != last {
			last = l.State
			j, err := c.Job(ctx, id)
			if err != nil {
				return friendly(err)
			}
			for _, e := range j.Events {
				if e.Seq > seenEvent {
					seenEvent = e.Seq
					live.done()
					fmt.Fprintf(a.stderr, "==> %s %s: %s\n", e.At.Local().Format("15:04:05"), e.To, e.Reason)
				}
			}
		}
		if l.State.Terminal() && len(l.Lines) == 0 {
			if l.State != job.Finished {
				return fmt.Errorf("%w: job %s %s", errJobEnded, id, l.State)
			}
			return nil
		}
	}
}

// printLiveLine is printLine with image build output shown as one line
// that each build line rewrites, on a terminal.
func (a *app) printLiveLine(live *liveLine, l job.LogLine) {
	if l.Stream == "build" && live.tty {
		live.set("build: " + l.Text)
		return
	}
	live.done()
	a.printLine(l)
}

// printLine writes a job's output line to stdout, and Slipway's own notes
// and image build output to stderr.
func (a *app) printLine(l job.LogLine) {
	switch l.Stream {
	case "slipway":
		fmt.Fprintf(a.stderr, "==> %s\n", l.Text)
	case "build":
		fmt.Fprintf(a.stderr, "build: %s\n", l.Text)
	default:
		fmt.Fprintln(a.stdout, l.Text)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

package cli

import (
	"fmt"
	"strings"

	"github.com/google/shlex"
	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/source"
)

// launchFlags are the flags of `slipway launch`.
type launchFlags struct {
	queue, image, dir, entrypoint, runConfig, priority string
	env                                                []string
	follow                                             bool
}

func (a *app) launchCmd() *cobra.Command {
	var f launchFlags
	cmd := &cobra.Command{
		Use:   "launch -q QUEUE [--image REF | --dir PATH] [--entrypoint \"CMD ARGS\"] [flags] [-- ARGS...]",
		Short: "Enqueue a training job and print its id",
		Long: `Enqueue a training job on a queue and print its id (the job as JSON with -o json).

The job runs --image, or the code in --dir (packed and sent with the job), with
--entrypoint as its command (split as a POSIX shell splits words) and the
arguments after -- appended. The run config (-c) reaches the job as a JSON file
named by $SLIPWAY_RUN_CONFIG_FILE and as $SLIPWAY_RUN_CONFIG.

With --follow, launch streams the job's logs and state changes, and exits 0
only if the job finished successfully (3 if it ended otherwise).`,
		Example: `  slipway launch -q cpu --dir ./mnist --entrypoint "python train.py" -c '{"epochs": 3}' --follow
  slipway launch -q train --image my-registry/trainer:1.2 --env WANDB_MODE=offline -- --lr 0.01
  slipway launch -q sm --image 123456789012.dkr.ecr.us-east-2.amazonaws.com/trainer:latest --priority high`,
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := f.request(args)
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			j, err := c.Enqueue(cmd.Context(), req)
			if err != nil {
				return friendly(err)
			}
			if a.json() && !f.follow {
				return a.printJSON(j)
			}
			fmt.Fprintln(a.stdout, j.ID)
			if f.follow {
				return a.follow(cmd.Context(), c, j.ID)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.queue, "queue", "q", "", "queue to enqueue on (required)")
	fl.StringVar(&f.image, "image", "", "container image to run")
	fl.StringVar(&f.dir, "dir", "", "directory of code to send with the job")
	fl.StringVar(&f.entrypoint, "entrypoint", "", `command to run, e.g. "python train.py --data /data"`)
	fl.StringVarP(&f.runConfig, "config", "c", "", "run config: a JSON file or inline JSON object")
	fl.StringArrayVar(&f.env, "env", nil, "environment variable K=V for the job (repeatable)")
	fl.StringVar(&f.priority, "priority", "medium", "low, medium, high or critical")
	fl.BoolVar(&f.follow, "follow", false, "stream logs and states until the job ends")
	_ = cmd.MarkFlagRequired("queue")
	return cmd
}

// request turns the flags and the arguments after -- into an enqueue request.
func (f *launchFlags) request(args []string) (api.Enqueue, error) {
	prio, err := job.ParsePriority(f.priority)
	if err != nil {
		return api.Enqueue{}, usageErr("--priority: %v", err)
	}
	req := api.Enqueue{Queue: f.queue, Priority: prio, Spec: job.Spec{Image: f.image, Args: args}}
	if f.entrypoint != "" {
		words, err := shlex.Split(f.entrypoint)
		if err != nil {
			return api.Enqueue{}, usageErr("--entrypoint %q: %v", f.entrypoint, err)
		}
		req.Spec.Entrypoint = words
	}
	for _, kv := range f.env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return api.Enqueue{}, usageErr("--env %q: want KEY=VALUE", kv)
		}
		if req.Spec.Env == nil {
			req.Spec.Env = map[string]string{}
		}
		req.Spec.Env[k] = v
	}
	if req.Spec.RunConfig, err = readJSONArg("--config", f.runConfig); err != nil {
		return api.Enqueue{}, err
	}
	if f.dir != "" {
		if req.Code, err = source.Pack(f.dir, api.MaxCodeSize); err != nil {
			return api.Enqueue{}, err
		}
	}
	if f.image == "" && f.dir == "" && f.entrypoint == "" {
		return api.Enqueue{}, usageErr("launch needs something to run: --image, --dir or --entrypoint")
	}
	return req, nil
}

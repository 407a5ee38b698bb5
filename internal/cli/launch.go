package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/google/shlex"
	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/admission"
	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
	"github.com/slipway-ml/slipway/internal/runner/sagemaker"
	"github.com/slipway-ml/slipway/internal/source"
)

// launchFlags are the flags of `slipway launch`.
type launchFlags struct {
	queue, image, dir, gitSource, entrypoint, runConfig, priority, resourceArgs string
	idempotencyKey                                                              string
	env, setVars, secrets                                                       []string
	follow, dryRun                                                              bool
}

func (a *app) launchCmd() *cobra.Command {
	var f launchFlags
	cmd := &cobra.Command{
		Use:   "launch -q QUEUE [--image REF | --dir PATH | --git URL[@REF]] [--entrypoint \"CMD ARGS\"] [flags] [-- ARGS...]",
		Short: "Enqueue a training job and print its id",
		Long: `Enqueue a training job on a queue and print its id (the job as JSON with -o json).

The job runs --image, or the code in --dir (packed and sent with the job) or in
--git (fetched by the agent at the ref after the last @), with
--entrypoint as its command (split as a POSIX shell splits words) and the
arguments after -- appended. The run config (-c) reaches the job as a JSON file
named by $SLIPWAY_RUN_CONFIG_FILE and as $SLIPWAY_RUN_CONFIG.

With --idempotency-key, launching again with the same key (a retry after a
lost answer, a script run twice) creates nothing and prints the first job.

With --follow, launch streams the job's logs and state changes, and exits 0
only if the job finished successfully (3 if it ended otherwise).

On a sagemaker queue, --set-var fills the queue's {{name}} template variables,
--resource-args deep-merges CreateTrainingJob members over the queue's config
for this job only, and --dry-run prints the exact CreateTrainingJob request
the job would send, with the checks it passed, and sends nothing.`,
		Example: `  slipway launch -q cpu --dir ./mnist --entrypoint "python train.py" -c '{"epochs": 3}' --follow
  slipway launch -q train --image my-registry/trainer:1.2 --env WANDB_MODE=offline -- --lr 0.01
  slipway launch -q sm --image 123456789012.dkr.ecr.us-east-2.amazonaws.com/trainer:latest --priority high
  slipway launch -q cpu --entrypoint "python train.py" --idempotency-key nightly-2024-05-01
  slipway launch -q sm --image trainer:1 --set-var instances=2 --resource-args '{"ResourceConfig": {"VolumeSizeInGB": 50}}' --dry-run`,
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := f.request(args)
			if err != nil {
				return err
			}
			up := newLiveLine(a.stderr)
			var opts []client.Option
			if len(req.Code) > 0 && up.tty {
				up.set(fmt.Sprintf("uploading code: 0 B / %s", byteSize(int64(len(req.Code)))))
				opts = append(opts, client.WithUploadProgress(func(sent, total int64) {
					up.set(fmt.Sprintf("uploading code: %s / %s", byteSize(sent), byteSize(total)))
				}))
			}
			c, err := a.client(opts...)
			if err != nil {
				return err
			}
			if f.dryRun {
				up.done()
				return a.dryRun(cmd.Context(), c, req)
			}
			var j job.Job
			if f.idempotencyKey != "" {
				var created bool
				j, created, err = c.EnqueueOnce(cmd.Context(), f.idempotencyKey, req)
				if err == nil && !created {
					fmt.Fprintf(a.stderr, "launch: job %s was enqueued before with idempotency key %q; no new job\n", j.ID, f.idempotencyKey)
				}
			} else {
				j, err = c.Enqueue(cmd.Context(), req)
			}
			if up.open {
				if err == nil {
					up.set(fmt.Sprintf("uploaded code: %[1]s / %[1]s", byteSize(int64(len(req.Code)))))
				}
				up.done()
			}
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
	fl.StringVar(&f.dir, "dir", "", "directory of code to send with the job (.dockerignore, else .gitignore, leaves files out)")
	fl.StringVar(&f.gitSource, "git", "", "git repository the agent fetches the code from: URL[@BRANCH|TAG|COMMIT]")
	fl.StringVar(&f.entrypoint, "entrypoint", "", `command to run, e.g. "python train.py --data /data"`)
	fl.StringVarP(&f.runConfig, "config", "c", "", "run config: a JSON file or inline JSON object")
	fl.StringArrayVar(&f.env, "env", nil, "environment variable K=V for the job (repeatable)")
	fl.StringArrayVar(&f.secrets, "secret", nil, "a secret for the job: NAME=VALUE (sealed by the server, never stored in plaintext), NAME=secretsmanager:ARN or NAME=ssm:/path (repeatable)")
	fl.StringVar(&f.priority, "priority", "medium", "low, medium, high or critical")
	fl.BoolVar(&f.follow, "follow", false, "stream logs and states until the job ends")
	fl.StringArrayVar(&f.setVars, "set-var", nil, "fill a queue template variable: NAME=VALUE (repeatable)")
	fl.StringVar(&f.resourceArgs, "resource-args", "", "JSON (or a file) deep-merged over the queue's resource config for this job")
	fl.StringVar(&f.idempotencyKey, "idempotency-key", "", "make the launch safe to repeat: every launch with this key gets the one job the first made (up to 255 printable characters)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "check the job and print what it would send (for sagemaker: the CreateTrainingJob request); enqueue nothing")
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
	for _, kv := range f.secrets {
		name, v, isValue, err := job.ParseSecretArg(kv)
		if err != nil {
			return api.Enqueue{}, usageErr("%v", err) // names the secret, never its value
		}
		if isValue {
			if req.Secrets == nil {
				req.Secrets = map[string]string{}
			}
			req.Secrets[name] = v
			continue
		}
		req.Spec.Secrets = append(req.Spec.Secrets, job.Secret{Name: name, Ref: v})
	}
	for _, kv := range f.setVars {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return api.Enqueue{}, usageErr("--set-var %q: want NAME=VALUE", kv)
		}
		if req.Spec.Vars == nil {
			req.Spec.Vars = map[string]string{}
		}
		req.Spec.Vars[k] = v
	}
	if req.Spec.RunConfig, err = readJSONArg("--config", f.runConfig); err != nil {
		return api.Enqueue{}, err
	}
	if req.Spec.ResourceArgs, err = readJSONArg("--resource-args", f.resourceArgs); err != nil {
		return api.Enqueue{}, err
	}
	if f.dir != "" {
		if req.Code, err = source.Pack(f.dir, api.MaxCodeSize); err != nil {
			return api.Enqueue{}, err
		}
	}
	if f.gitSource != "" {
		if f.dir != "" {
			return api.Enqueue{}, usageErr("--dir and --git both give the job's code: choose one")
		}
		g, err := job.ParseGitSource(f.gitSource)
		if err != nil {
			return api.Enqueue{}, usageErr("--git: %v", err)
		}
		req.Spec.Git = &g
	}
	if f.image == "" && f.dir == "" && f.gitSource == "" && f.entrypoint == "" {
		return api.Enqueue{}, usageErr("launch needs something to run: --image, --dir, --git or --entrypoint")
	}
	return req, nil
}

// dryRun checks a job against its queue as the server and the agent would,
// and prints what it would send, without enqueueing it.
func (a *app) dryRun(ctx context.Context, c *client.Client, req api.Enqueue) error {
	q, err := c.Queue(ctx, req.Queue)
	if err != nil {
		return friendly(err)
	}
	j := job.Job{ID: "j-dryrun0000000000", Queue: q.Name, Attempt: 1, Priority: req.Priority, Spec: req.Spec, Image: req.Spec.Image}
	if len(req.Code) > 0 {
		sum := sha256.Sum256(req.Code)
		j.Spec.CodeDigest, j.Spec.CodeSize = "sha256:"+hex.EncodeToString(sum[:]), int64(len(req.Code))
	}
	if err := j.Spec.Validate(); err != nil {
		return err
	}
	if err := (admission.Checker{}).CheckJob(q, j); err != nil {
		return err
	}
	if q.Resource != job.SageMaker {
		if a.json() {
			return a.printJSON(j)
		}
		fmt.Fprintf(a.stderr, "dry run: the job passes the %s queue's checks; nothing was enqueued\n", q.Resource)
		return a.printJSON(j.Spec)
	}
	if j.Image == "" {
		j.Image = admission.PlaceholderImage
		fmt.Fprintf(a.stderr, "dry run: the image will be built from the job's code by the agent; %s stands in for it\n", j.Image)
	}
	r, err := sagemaker.BuildRequest(q, runner.Task{Job: &j, Name: runner.TaskName(j)})
	if err != nil {
		return err
	}
	if a.json() {
		return a.printJSON(map[string]any{"request": r.JSON, "checks": r.Checks, "notes": r.Notes})
	}
	fmt.Fprintf(a.stdout, "%s\n", r.JSON)
	fmt.Fprintln(a.stderr, "dry run: nothing was sent. The request passed:")
	for _, c := range r.Checks {
		fmt.Fprintf(a.stderr, "  ✓ %s\n", c)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(a.stderr, "  note: %s\n", n)
	}
	fmt.Fprintf(a.stderr, "  (TrainingJobName and ids use the placeholder job id %s)\n", j.ID)
	return nil
}

package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
)

func (a *app) queueCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "Create, list, describe, update and delete queues",
	}
	cmd.AddCommand(a.queueCreateCmd(), a.queueUpdateCmd(), a.queueListCmd(), a.queueDescribeCmd(), a.queueDeleteCmd())
	return cmd
}

// readJSONArg reads a JSON value given inline or as a file path.
func readJSONArg(flag, v string) (json.RawMessage, error) {
	if v == "" {
		return nil, nil
	}
	b := []byte(v)
	if t := strings.TrimSpace(v); !strings.HasPrefix(t, "{") && !strings.HasPrefix(t, "[") {
		var err error
		if b, err = os.ReadFile(v); err != nil {
			return nil, usageErr("%s %q: neither inline JSON nor a readable file: %v", flag, v, err)
		}
	}
	if !json.Valid(b) {
		var x any
		err := json.Unmarshal(b, &x)
		return nil, usageErr("%s: not valid JSON: %v", flag, err)
	}
	return b, nil
}

func (a *app) queueCreateCmd() *cobra.Command {
	var resource, config, policy string
	var vars []string
	var maxRunning int
	cmd := &cobra.Command{
		Use:   "create NAME --resource local-process|local-container|sagemaker [--config FILE|JSON]",
		Short: "Create a queue bound to one resource",
		Long: `Create a queue bound to one resource.

A sagemaker queue's config is a CreateTrainingJob JSON body, checked against
SageMaker's model now, not when a job runs: every error names its JSON path.
Without --config it gets the default body, and takes jobs once RoleArn and
OutputDataConfig.S3OutputPath are filled (slipway queue update).

Config values may be {{name}} template variables, declared with --var
'name:type[:min:max|:enum=a,b][=default]' (type int, float, string or bool)
and filled at launch with --set-var name=value.`,
		Example: `  slipway queue create cpu --resource local-process
  slipway queue create train --resource local-container
  slipway queue create sm --resource sagemaker --config sagemaker-queue.json
  slipway queue create sm2 --resource sagemaker --config sm.json \
    --var 'instance_type:string:enum=ml.m5.xlarge,ml.g5.xlarge=ml.m5.xlarge' --var 'instances:int:1:8=1'`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := job.ParseResource(resource)
			if err != nil {
				return usageErr("--resource: %v", err)
			}
			cfg, err := readJSONArg("--config", config)
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			if maxRunning < 0 {
				return usageErr("--max-running %d: want 0 (no limit) or more", maxRunning)
			}
			pol, err := readPolicyArg(policy)
			if err != nil {
				return err
			}
			q, err := c.CreateQueue(cmd.Context(), api.CreateQueue{Name: args[0], Resource: res, Config: cfg, Vars: vars, MaxRunning: &maxRunning, Policy: pol})
			if err != nil {
				return friendly(err)
			}
			if a.json() {
				return a.printJSON(q)
			}
			fmt.Fprintf(a.stdout, "queue %s created (%s)\n", q.Name, q.Resource)
			a.printReadiness(q)
			return nil
		},
	}
	cmd.Flags().StringVar(&resource, "resource", "", "where the queue's jobs run: local-process, local-container or sagemaker (required)")
	cmd.Flags().StringVar(&config, "config", "", "resource config: a JSON file or inline JSON (for sagemaker: a CreateTrainingJob body)")
	cmd.Flags().StringArrayVar(&vars, "var", nil, "declare a {{name}} template variable: name:type[:min:max|:enum=a,b][=default] (repeatable)")
	cmd.Flags().IntVar(&maxRunning, "max-running", 0, "most of the queue's jobs held at once across every agent; 0 for no limit")
	cmd.Flags().StringVar(&policy, "policy", "", policyFlagHelp)
	_ = cmd.MarkFlagRequired("resource")
	return cmd
}

func (a *app) queueUpdateCmd() *cobra.Command {
	var config, policy string
	var vars []string
	var maxRunning int
	cmd := &cobra.Command{
		Use:   "update NAME [--config FILE|JSON] [--max-running N] [--policy FILE|JSON]",
		Short: "Replace a queue's resource config, its policy, or its limit on running jobs",
		Long: `Replace a queue's resource config (--config), or change how many of its jobs
may be held by agents at once, across every agent (--max-running; 0 lifts the
limit), or what its jobs may ask for (--policy: allowed role ARNs, image
registries or repositories, instance types, most instances, longest runtime,
spot required, git repositories). A job outside the policy is refused at launch, naming the rule.
What is not given stays as it is.`,
		Example: `  slipway queue update sm --config sagemaker-queue.json
  slipway queue update sm --max-running 4
  slipway queue update sm --policy '{"role_arns": ["arn:aws:iam::123456789012:role/Train"], "max_instance_count": 2}'`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			setMax := cmd.Flags().Changed("max-running")
			if config == "" && !setMax && policy == "" {
				return usageErr("queue update needs --config, --max-running or --policy")
			}
			pol, err := readPolicyArg(policy)
			if err != nil {
				return err
			}
			cfg, err := readJSONArg("--config", config)
			if err != nil {
				return err
			}
			req := api.CreateQueue{Name: args[0], Config: cfg, Vars: vars, Policy: pol}
			if setMax {
				if maxRunning < 0 {
					return usageErr("--max-running %d: want 0 (no limit) or more", maxRunning)
				}
				req.MaxRunning = &maxRunning
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			q, err := c.UpdateQueue(cmd.Context(), req)
			if err != nil {
				return friendly(err)
			}
			if a.json() {
				return a.printJSON(q)
			}
			fmt.Fprintf(a.stdout, "queue %s updated\n", q.Name)
			a.printReadiness(q)
			return nil
		},
	}
	cmd.Flags().StringVar(&config, "config", "", "resource config: a JSON file or inline JSON")
	cmd.Flags().StringArrayVar(&vars, "var", nil, "declare a {{name}} template variable (repeatable; replaces the queue's declarations)")
	cmd.Flags().IntVar(&maxRunning, "max-running", 0, "most of the queue's jobs held at once across every agent; 0 lifts the limit")
	cmd.Flags().StringVar(&policy, "policy", "", policyFlagHelp+"; {} removes it")
	return cmd
}

func (a *app) queueListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List the queues",
		Example: `  slipway queue list -o json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			qs, err := c.Queues(cmd.Context())
			if err != nil {
				return friendly(err)
			}
			if a.json() {
				return a.printJSON(qs)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tRESOURCE\tREADY\tUNFINISHED\tCREATED")
			for _, q := range qs {
				ready := "yes"
				if len(q.Missing) > 0 {
					ready = "no: fill " + strings.Join(q.Missing, ", ")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", q.Name, q.Resource, ready, q.Unfinished, q.CreatedAt.Local().Format("2006-01-02 15:04"))
			}
			return tw.Flush()
		},
	}
}

func (a *app) queueDescribeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a queue and its config",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			q, err := c.Queue(cmd.Context(), args[0])
			if err != nil {
				return friendly(err)
			}
			if a.json() {
				return a.printJSON(q)
			}
			fmt.Fprintf(a.stdout, "name:        %s\nresource:    %s\nunfinished:  %d\ncreated:     %s\n",
				q.Name, q.Resource, q.Unfinished, q.CreatedAt.Local().Format("2006-01-02 15:04:05"))
			if q.MaxRunning > 0 {
				fmt.Fprintf(a.stdout, "max running: %d (across every agent)\n", q.MaxRunning)
			}
			a.printReadiness(q)
			for _, v := range q.Vars {
				fmt.Fprintf(a.stdout, "var:         %s\n", v)
			}
			if len(q.Config) > 0 {
				var pretty any
				_ = json.Unmarshal(q.Config, &pretty)
				b, _ := json.MarshalIndent(pretty, "", "  ")
				fmt.Fprintf(a.stdout, "config:\n%s\n", b)
			}
			return nil
		},
	}
}

func (a *app) queueDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a queue that holds no unfinished job",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.DeleteQueue(cmd.Context(), args[0]); err != nil {
				return friendly(err)
			}
			if a.json() {
				return a.printJSON(map[string]string{"deleted": args[0]})
			}
			fmt.Fprintf(a.stdout, "queue %s deleted\n", args[0])
			return nil
		},
	}
}

// printReadiness says whether a queue takes jobs, and what to fill if not.
func (a *app) printReadiness(q job.Queue) {
	if len(q.Missing) == 0 {
		fmt.Fprintln(a.stdout, "ready:       yes")
		return
	}
	fmt.Fprintf(a.stdout, "ready:       no: fill %s (slipway queue update %s --config FILE)\n", strings.Join(q.Missing, " and "), q.Name)
}

// exactArgs wants n positional arguments, named in the error.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErr("%s wants %s, got %d argument(s)", cmd.CommandPath(), names, len(args))
		}
		return nil
	}
}

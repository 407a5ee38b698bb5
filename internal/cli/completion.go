package cli

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/job"
)

func (a *app) completionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script",
		Long: `Print the completion script of a shell. It completes commands and flags, and
asks the server for queue names (-q, --queue) and job ids (job describe, logs,
why, cancel).`,
		Example: `  # bash, for this shell; add it to ~/.bashrc to keep it
  source <(slipway completion bash)
  # zsh
  slipway completion zsh > "${fpath[1]}/_slipway"
  # fish
  slipway completion fish > ~/.config/fish/completions/slipway.fish`,
		ValidArgs:   []string{"bash", "zsh", "fish"},
		Annotations: map[string]string{"skip-user-config": "true"},
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErr("completion wants one shell: bash, zsh or fish")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(a.stdout, true)
			case "zsh":
				return root.GenZshCompletion(a.stdout)
			case "fish":
				return root.GenFishCompletion(a.stdout, true)
			}
			return usageErr("completion: shell %q: want bash, zsh or fish", args[0])
		},
	}
}

// addDynamicCompletion completes, from the server, the queue of every -q /
// --queue flag and the job id of the job commands that take one.
func (a *app) addDynamicCompletion(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Flags().Lookup("queue") != nil {
			_ = c.RegisterFlagCompletionFunc("queue", a.completeQueues)
		}
		if c.Parent() != nil && c.Parent().Name() == "job" && c.ValidArgsFunction == nil {
			switch c.Name() {
			case "describe", "logs", "why", "cancel":
				c.ValidArgsFunction = a.completeJobs
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// completionTimeout bounds a completion's call to the server: a shell waits on it.
const completionTimeout = 2 * time.Second

func (a *app) completeQueues(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	_ = a.applyUserConfig(cmd)
	c, err := a.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
	defer cancel()
	qs, err := c.Queues(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	names := make([]string, 0, len(qs))
	for _, q := range qs {
		names = append(names, q.Name+"\t"+string(q.Resource))
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

func (a *app) completeJobs(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	_ = a.applyUserConfig(cmd)
	c, err := a.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
	defer cancel()
	js, err := c.Jobs(ctx, "", job.State(""), 200)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ids := make([]string, 0, len(js))
	for _, j := range js {
		ids = append(ids, j.ID+"\t"+j.Queue+" "+string(j.State))
	}
	return ids, cobra.ShellCompDirectiveNoFileComp
}

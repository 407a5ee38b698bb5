package cli

import "github.com/spf13/cobra"

// examples are the --help examples of the commands whose own files give
// none, by command path; a command's own Example wins.
var examples = map[string]string{
	"slipway": `  slipway demo
  slipway up
  slipway queue create cpu --resource local-process
  slipway launch -q cpu --entrypoint "python train.py" --dir . --follow`,
	"slipway server": `  slipway server --addr 0.0.0.0:7070 --db /var/lib/slipway/slipway.db
  slipway server --db postgres://slipway@db.internal/slipway`,
	"slipway agent": `  slipway agent -c agent.yaml
  slipway agent -q cpu -q gpu --max-jobs 2 --server http://10.0.0.5:7070`,
	"slipway agent verify": `  slipway agent verify -c agent.yaml`,
	"slipway up": `  slipway up
  slipway up --local-aws          # also a local SageMaker/S3/ECR/Logs endpoint, to rehearse sagemaker queues`,
	"slipway demo": `  slipway demo`,
	"slipway queue": `  slipway queue create cpu --resource local-process
  slipway queue list`,
	"slipway queue create": `  slipway queue create cpu --resource local-process
  slipway queue create sm --resource sagemaker --config sagemaker-queue.json \
    --var "type:string:enum=ml.m5.large,ml.g5.xlarge=ml.m5.large"`,
	"slipway queue update":   `  slipway queue update sm --config sagemaker-queue.json`,
	"slipway queue list":     `  slipway queue list -o json`,
	"slipway queue describe": `  slipway queue describe sm`,
	"slipway queue delete":   `  slipway queue delete cpu`,
	"slipway launch": `  slipway launch -q cpu --entrypoint "python train.py" --dir . -c '{"lr": 0.01}' --follow
  slipway launch -q gpu --image my-trainer:1.0 -- --epochs 3
  slipway launch -q sm --dir . --set-var type=ml.g5.xlarge --dry-run`,
	"slipway job":        `  slipway job list --state running`,
	"slipway job cancel": `  slipway job cancel j-0123456789abcdef`,
	"slipway local-aws": `  slipway local-aws                 # then: export AWS_ENDPOINT_URL=http://127.0.0.1:4566
  slipway local-aws --data /var/tmp/slipway-aws --region us-east-2`,
}

// addExamples fills the Example of every command that has none.
func addExamples(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Example == "" {
			c.Example = examples[c.CommandPath()]
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// Command slipway launches machine-learning training jobs from named queues
// onto AWS SageMaker, local containers or local processes.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/slipway-ml/slipway/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

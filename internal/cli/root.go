// Package cli is the slipway command line: cobra commands for the server,
// the agent, the single-machine stack and the client side. wiring.go is the
// one place that picks the implementations behind the seams.
package cli

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/client"
)

// Exit codes, as documented in `slipway --help`.
const (
	exitOK       = 0
	exitError    = 1 // the command failed
	exitUsage    = 2 // bad flags or arguments
	exitJobEnded = 3 // --follow: the job ended other than finished
)

// errJobEnded makes a followed job that did not finish end the command with exitJobEnded.
var errJobEnded = errors.New("job did not finish")

// errUsage marks an error in the command line itself.
var errUsage = errors.New("usage")

// app holds what every command shares: the streams and the global flags.
type app struct {
	stdout, stderr io.Writer
	server         string
	output         string
	logFormat      string
	logLevel       string
	token          string       // from --token, SLIPWAY_TOKEN or the config file
	tokenFlag      string       // --token
	tlsCA          string       // from --tls-ca, SLIPWAY_TLS_CA or the config file
	log            *slog.Logger // servers' and agents' logs, on stderr; set by setupLogging
}

// Execute runs the slipway command line with args and returns the exit code.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errJobEnded):
		fmt.Fprintln(stderr, "Error:", err)
		return exitJobEnded
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, "Error:", err)
		return exitUsage
	default:
		fmt.Fprintln(stderr, "Error:", err)
		var unknownCA x509.UnknownAuthorityError
		if errors.As(err, &unknownCA) {
			fmt.Fprintln(stderr, "Hint: the server's certificate is not signed by a CA this machine trusts; pass its CA (or the self-signed certificate) with --tls-ca FILE, SLIPWAY_TLS_CA or tls_ca in the config file")
		}
		return exitError
	}
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "slipway",
		Short: "Launch machine-learning training jobs from queues onto SageMaker, containers or processes",
		Long: `Slipway takes training jobs off named queues and runs them on AWS SageMaker,
in local containers or as local processes. A server keeps the queues; agents
claim jobs, run them, follow them to the end and report every state.

Start here:
  slipway demo                      run a sample job end to end in a temporary stack
  slipway up                        server and agent on this machine (SQLite)
  slipway queue create q1 --resource local-process
  slipway launch -q q1 --entrypoint "python train.py" --dir . --follow

Exit codes:
  0  success
  1  the command failed (the message says why)
  2  bad flags or arguments
  3  launch --follow / job logs -f: the job ended, but not as finished`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := a.setupLogging(); err != nil {
				return err
			}
			return a.applyUserConfig(cmd)
		},
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w: %v (see %s --help)", errUsage, err, cmd.CommandPath())
	})
	pf := root.PersistentFlags()
	pf.StringVar(&a.server, "server", envOr("SLIPWAY_SERVER", client.DefaultServer), "Slipway server URL (env SLIPWAY_SERVER)")
	pf.StringVar(&a.tokenFlag, "token", "", "API token (env SLIPWAY_TOKEN, else the config file's token)")
	pf.StringVar(&a.tlsCA, "tls-ca", envOr("SLIPWAY_TLS_CA", ""), "PEM file of the certificates that an https:// server's certificate is checked against, instead of the system's: for a private CA or a self-signed server (env SLIPWAY_TLS_CA, else the config file's tls_ca)")
	pf.StringVarP(&a.output, "output", "o", "text", "output format: text or json")
	pf.StringVar(&a.logFormat, "log-format", "text", "log format of servers and agents: text or json")
	pf.StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn or error")

	jobCmd := a.jobCmd()
	jobCmd.AddCommand(a.jobWhyCmd())
	root.AddCommand(
		a.serverCmd(), a.agentCmd(), a.upCmd(), a.demoCmd(),
		a.queueCmd(), a.launchCmd(), jobCmd, a.localAWSCmd(),
		a.configCmd(), a.completionCmd(), a.benchCmd(), a.tokenCmd(),
	)
	root.CompletionOptions.DisableDefaultCmd = true // completionCmd replaces it, with examples
	a.addDynamicCompletion(root)
	addExamples(root)
	return root
}

func (a *app) setupLogging() error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(a.logLevel)); err != nil {
		return fmt.Errorf("%w: --log-level %q: want debug, info, warn or error", errUsage, a.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch a.logFormat {
	case "text":
		a.log = slog.New(slog.NewTextHandler(a.stderr, opts))
	case "json":
		a.log = slog.New(slog.NewJSONHandler(a.stderr, opts))
	default:
		return fmt.Errorf("%w: --log-format %q: want text or json", errUsage, a.logFormat)
	}
	// What logs without being handed a logger uses the process's default.
	// It is the CLI's only when the CLI writes to the process's own stderr:
	// command lines run side by side in one process (the tests) must not
	// send each other's logs to their buffers.
	if a.stderr == os.Stderr {
		slog.SetDefault(a.log)
	}
	if a.output != "text" && a.output != "json" {
		return fmt.Errorf("%w: --output %q: want text or json", errUsage, a.output)
	}
	return nil
}

func (a *app) client(opts ...client.Option) (*client.Client, error) {
	return a.clientAt(a.server, opts...)
}

// clientAt is client for another server URL (an agent's config may name one).
func (a *app) clientAt(server string, opts ...client.Option) (*client.Client, error) {
	base := []client.Option{client.WithToken(a.token)}
	if a.tlsCA != "" {
		pool, err := loadCAs(a.tlsCA)
		if err != nil {
			return nil, err
		}
		base = append(base, client.WithRootCAs(pool))
	}
	c, err := client.New(server, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("%w: --server: %v", errUsage, err)
	}
	return c, nil
}

// loadCAs reads --tls-ca: PEM certificates, at least one.
func loadCAs(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: --tls-ca: %v", errUsage, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%w: --tls-ca %s: no PEM certificate in it (want -----BEGIN CERTIFICATE-----)", errUsage, path)
	}
	return pool, nil
}

// json reports whether the user asked for JSON output.
func (a *app) json() bool { return a.output == "json" }

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// usageErr wraps a complaint about the command line.
func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// friendly adds what to do next to an error a user can act on.
func friendly(err error) error {
	if client.IsUnreachable(err) {
		return fmt.Errorf("%w\nis a server running? start one with `slipway up`, or point --server / SLIPWAY_SERVER at yours", err)
	}
	return err
}

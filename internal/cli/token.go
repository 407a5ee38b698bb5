package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

func (a *app) tokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke API tokens (admins only)",
		Long: `Every API call but /healthz needs a token. A token has a role: admin (every
call), submit (enqueue to and read its queues) or agent (claim from its
queues and report on the jobs it holds); submit and agent tokens may be
scoped to queues with --queue. The secret is printed once; the server keeps
only its SHA-256.

With --db the command works on the database directly, without a server:
that is how the first admin token is made (slipway up makes one itself).`,
		Example: `  slipway token create --role admin --db /var/lib/slipway/slipway.db
  slipway token create --role submit --queue cpu --name alice
  slipway token list
  slipway token revoke t-0123456789abcdef`,
	}
	cmd.AddCommand(a.tokenCreateCmd(), a.tokenListCmd(), a.tokenRevokeCmd())
	return cmd
}

// tokens is where the token commands act: the server, or the store when
// --db is given.
type tokens interface {
	create(ctx context.Context, req api.CreateToken) (api.CreatedToken, error)
	list(ctx context.Context) ([]job.Token, error)
	revoke(ctx context.Context, id string) error
	close()
}

func (a *app) tokens(ctx context.Context, dsn string) (tokens, error) {
	if dsn != "" {
		st, err := openStore(ctx, dsn)
		if err != nil {
			return nil, err
		}
		return storeTokens{st}, nil
	}
	c, err := a.client()
	if err != nil {
		return nil, err
	}
	return apiTokens{c}, nil
}

type apiTokens struct{ c *client.Client }

func (t apiTokens) create(ctx context.Context, req api.CreateToken) (api.CreatedToken, error) {
	return t.c.CreateToken(ctx, req)
}
func (t apiTokens) list(ctx context.Context) ([]job.Token, error) { return t.c.Tokens(ctx) }
func (t apiTokens) revoke(ctx context.Context, id string) error   { return t.c.RevokeToken(ctx, id) }
func (t apiTokens) close()                                        {}

type storeTokens struct{ st store.Store }

func (t storeTokens) create(ctx context.Context, req api.CreateToken) (api.CreatedToken, error) {
	return createStoreToken(ctx, t.st, req)
}
func (t storeTokens) list(ctx context.Context) ([]job.Token, error) { return t.st.ListTokens(ctx) }
func (t storeTokens) revoke(ctx context.Context, id string) error   { return t.st.RevokeToken(ctx, id) }
func (t storeTokens) close()                                        { _ = t.st.Close() }

// createStoreToken makes a token straight in st.
func createStoreToken(ctx context.Context, st store.Tokens, req api.CreateToken) (api.CreatedToken, error) {
	tok, secret, err := job.NewToken(req.Role, req.Queues, req.Name)
	if err != nil {
		return api.CreatedToken{}, err
	}
	tok, err = st.CreateToken(ctx, tok)
	if err != nil {
		return api.CreatedToken{}, err
	}
	tok.Hash = ""
	return api.CreatedToken{Token: tok, Secret: secret}, nil
}

func (a *app) tokenCreateCmd() *cobra.Command {
	var (
		role, name, dsn string
		queues          []string
	)
	cmd := &cobra.Command{
		Use:   "create --role admin|submit|agent [--queue Q]...",
		Short: "Make an API token and print its secret, once",
		Example: `  slipway token create --role submit --queue cpu --name alice
  slipway token create --role agent --queue sm --name sagemaker-agent
  slipway token create --role admin --db ~/.local/share/slipway/slipway.db   # the first one, without a server`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := job.ParseRole(role)
			if err != nil {
				return usageErr("--role: %v", err)
			}
			ts, err := a.tokens(cmd.Context(), dsn)
			if err != nil {
				return err
			}
			defer ts.close()
			t, err := ts.create(cmd.Context(), api.CreateToken{Role: r, Queues: queues, Name: name})
			if err != nil {
				return friendly(err)
			}
			if a.json() {
				return a.printJSON(t)
			}
			fmt.Fprintln(a.stdout, t.Secret)
			fmt.Fprintf(a.stderr, "token %s (%s) created; its secret above is shown this once\n", t.ID, describeScope(t.Token))
			return nil
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "admin, submit or agent (required)")
	cmd.Flags().StringArrayVar(&queues, "queue", nil, "limit a submit or agent token to this queue (repeatable; none: every queue)")
	cmd.Flags().StringVar(&name, "name", "", "a note on who or what holds the token")
	cmd.Flags().StringVar(&dsn, "db", "", "work on this database directly instead of the server (see slipway server --db)")
	_ = cmd.MarkFlagRequired("role")
	return cmd
}

func describeScope(t job.Token) string {
	if len(t.Queues) == 0 {
		return string(t.Role) + ", every queue"
	}
	return string(t.Role) + ", queues " + strings.Join(t.Queues, ", ")
}

func (a *app) tokenListCmd() *cobra.Command {
	var dsn string
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List the API tokens (never their secrets)",
		Example: `  slipway token list`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ts, err := a.tokens(cmd.Context(), dsn)
			if err != nil {
				return err
			}
			defer ts.close()
			list, err := ts.list(cmd.Context())
			if err != nil {
				return friendly(err)
			}
			if a.json() {
				return a.printJSON(list)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tROLE\tQUEUES\tNAME\tCREATED")
			for _, t := range list {
				qs := strings.Join(t.Queues, ",")
				if qs == "" {
					qs = "*"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Role, qs, t.Name, t.CreatedAt.Format("2006-01-02 15:04"))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&dsn, "db", "", "work on this database directly instead of the server")
	return cmd
}

func (a *app) tokenRevokeCmd() *cobra.Command {
	var dsn string
	cmd := &cobra.Command{
		Use:     "revoke ID",
		Short:   "Revoke an API token: requests with it fail from now on",
		Example: `  slipway token revoke t-0123456789abcdef`,
		Args:    exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ts, err := a.tokens(cmd.Context(), dsn)
			if err != nil {
				return err
			}
			defer ts.close()
			if err := ts.revoke(cmd.Context(), args[0]); err != nil {
				return friendly(err)
			}
			fmt.Fprintf(a.stdout, "token %s revoked\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&dsn, "db", "", "work on this database directly instead of the server")
	return cmd
}

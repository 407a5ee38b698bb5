package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// security is how a server guards its API: tokens, and TLS.
type security struct {
	auth            bool   // every call but /healthz needs a token
	tlsCert, tlsKey string // PEM files; both or neither
}

func (s *security) registerSecurity(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&s.auth, "auth", true, "require an API token on every call but /healthz (see slipway token); --auth=false only on a trusted network")
	fl.StringVar(&s.tlsCert, "tls-cert", "", "serve HTTPS with this PEM certificate (with --tls-key)")
	fl.StringVar(&s.tlsKey, "tls-key", "", "the PEM private key of --tls-cert")
}

func (s security) validate() error {
	if (s.tlsCert == "") != (s.tlsKey == "") {
		return usageErr("--tls-cert and --tls-key go together")
	}
	return nil
}

func (s security) scheme() string {
	if s.tlsCert != "" {
		return "https"
	}
	return "http"
}

// serve serves hs on ln, over TLS when a certificate was given.
func (s security) serve(hs *http.Server, ln net.Listener) error {
	if s.tlsCert != "" {
		return hs.ServeTLS(ln, s.tlsCert, s.tlsKey)
	}
	return hs.Serve(ln)
}

// localAdminToken returns an admin token of st for `slipway up`: the one
// the user already passes (--token, SLIPWAY_TOKEN, the config file) when it
// is one, else a new one, saved in the user's config file so that every
// later command on this machine sends it. saved names where it went.
func (a *app) localAdminToken(ctx context.Context, st store.Tokens) (secret, saved string, err error) {
	if a.token != "" {
		if id, err := job.TokenID(a.token); err == nil {
			t, err := st.GetToken(ctx, id)
			if err == nil && t.Role == job.RoleAdmin && t.Matches(a.token) {
				return a.token, "", nil
			}
			if err != nil && !errors.Is(err, job.ErrNotFound) {
				return "", "", fmt.Errorf("checking the token: %w", err)
			}
		}
	}
	t, err := createStoreToken(ctx, st, api.CreateToken{Role: job.RoleAdmin, Name: "slipway up (local admin)"})
	if err != nil {
		return "", "", fmt.Errorf("creating the local admin token: %w", err)
	}
	path := configPath()
	if path == "" {
		return t.Secret, "", nil
	}
	if err := saveUserToken(path, t.Secret); err != nil {
		return "", "", err
	}
	a.token = t.Secret
	return t.Secret, path, nil
}

// saveUserToken sets the token in the config file at path, created 0600.
func saveUserToken(path, token string) error {
	c, err := loadUserConfig(path)
	if err != nil {
		return err
	}
	c.Token = token
	b, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Errorf("encoding config: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating config folder: %w", err)
	}
	return writeFileAtomic(path, b, 0o600)
}

const policyFlagHelp = `what the queue's jobs may ask for (admins only), a JSON file or inline JSON: ` +
	`{"role_arns": [...], "images": [registry or repository prefixes], "instance_types": [...], ` +
	`"max_instance_count": N, "max_runtime_seconds": N, "spot_required": true}`

// readPolicyArg reads --policy: inline JSON or a file, decoded strictly so
// that a misspelt rule is an error rather than a rule that allows all.
func readPolicyArg(v string) (*job.Policy, error) {
	b, err := readJSONArg("--policy", v)
	if err != nil || b == nil {
		return nil, err
	}
	return parsePolicy(b)
}

func parsePolicy(b []byte) (*job.Policy, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p job.Policy
	if err := dec.Decode(&p); err != nil {
		return nil, usageErr("--policy: %v (keys: role_arns, images, instance_types, max_instance_count, max_runtime_seconds, spot_required)", err)
	}
	if dec.More() {
		return nil, usageErr("--policy: unexpected data after the JSON object")
	}
	if err := p.Validate(); err != nil {
		return nil, usageErr("%v", err)
	}
	return &p, nil
}

package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// security is how a server guards its API and jobs: tokens, TLS, and the
// key that seals secret values.
type security struct {
	auth            bool   // every call but /healthz needs a token
	tlsCert, tlsKey string // PEM files; both or neither
	secretsKey      []byte // seals secret values; nil: by reference only
	secretsKeyPath  string // --secrets-key
}

func (s *security) registerSecurity(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&s.auth, "auth", true, "require an API token on every call but /healthz (see slipway token); --auth=false only on a trusted network")
	fl.StringVar(&s.tlsCert, "tls-cert", "", "serve HTTPS with this PEM certificate (with --tls-key)")
	fl.StringVar(&s.tlsKey, "tls-key", "", "the PEM private key of --tls-cert")
	fl.StringVar(&s.secretsKeyPath, "secrets-key", "", "file of the 32-byte key that seals jobs' secret values, created (0600) when missing; "+
		"default for SQLite: the database path + .secrets-key; without one, jobs take secrets by reference only")
}

// loadSecretsKey reads (or makes) the key that seals secret values: the
// --secrets-key file, else one beside a SQLite database. A PostgreSQL
// server without --secrets-key takes secrets by reference only, so that
// its key never sits where its database does by accident.
func (s *security) loadSecretsKey(dsn string) error {
	path := s.secretsKeyPath
	if path == "" {
		if strings.Contains(dsn, "://") && !strings.HasPrefix(dsn, "sqlite://") {
			return nil
		}
		path = strings.TrimPrefix(dsn, "sqlite://") + ".secrets-key"
	}
	key, err := readOrMakeKey(path)
	if err != nil {
		return err
	}
	s.secretsKey = key
	return nil
}

// readOrMakeKey returns the 32 bytes in path, making a random key there
// (0600) when the file does not exist.
func readOrMakeKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("making a secrets key: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("making a secrets key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return readOrMakeKey(path) // another process made it first
		}
		if err != nil {
			return nil, fmt.Errorf("making a secrets key: %w", err)
		}
		if _, err := f.Write(key); err != nil {
			f.Close()
			return nil, fmt.Errorf("writing the secrets key %s: %w", path, err)
		}
		return key, f.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("reading the secrets key: %w", err)
	}
	if len(b) != 32 {
		return nil, usageErr("--secrets-key %s: %d bytes, want 32 (e.g. head -c 32 /dev/urandom > FILE)", path, len(b))
	}
	return b, nil
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
	`"max_instance_count": N, "max_runtime_seconds": N, "spot_required": true, "git_urls": [repository prefixes]}`

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

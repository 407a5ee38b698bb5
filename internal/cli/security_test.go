package cli

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/config"
)

// TestUpTokenAndTokenCommands checks what `slipway up` does for tokens (an
// admin token made and saved in the user's config file, then reused) and
// the token commands against a server that requires tokens.
func TestUpTokenAndTokenCommands(t *testing.T) {
	path := useConfig(t, "queue: cpu\n")
	ctx, cancel := context.WithCancel(context.Background())
	slog.SetDefault(slog.New(slog.DiscardHandler))
	dsn := filepath.Join(t.TempDir(), "slipway.db")
	st, err := openStore(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	a := &app{}
	secret, saved, err := a.localAdminToken(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if saved != path {
		t.Fatalf("admin token saved in %q, want %q", saved, path)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v, %v; want mode 0600", fi, err)
	}
	if c, err := loadUserConfig(path); err != nil || c.Token != secret || c.Queue != "cpu" {
		t.Fatalf("config file after up: %+v, %v; want the token and the queue kept", c, err)
	}
	again := &app{token: secret}
	if s2, saved, err := again.localAdminToken(ctx, st); err != nil || s2 != secret || saved != "" {
		t.Fatalf("second up: got %q, %q, %v; want the same token, not saved again", s2, saved, err)
	}

	s, err := startStackAuth(ctx, "127.0.0.1:0", st, &config.Agent{MaxJobs: 1}, secret, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = s.wait()
		st.Close()
	})
	url := s.url

	if code, _, stderr := run(t, url, "queue", "create", "cpu", "--resource", "local-process"); code != 0 {
		t.Fatalf("queue create with the config file's token: exit %d: %s", code, stderr)
	}
	if code, _, stderr := run(t, url, "--token", "slw_nope", "queue", "list"); code != 1 || !strings.Contains(stderr, "unauthorized") {
		t.Errorf("queue list with a bad --token: exit %d, %q; want 1, unauthorized", code, stderr)
	}
	t.Setenv("SLIPWAY_TOKEN", "slw_t-0000000000000000_x")
	if code, _, stderr := run(t, url, "queue", "list"); code != 1 || !strings.Contains(stderr, "unauthorized") {
		t.Errorf("queue list with a bad SLIPWAY_TOKEN over the config file's: exit %d, %q; want 1, unauthorized", code, stderr)
	}
	t.Setenv("SLIPWAY_TOKEN", "")

	code, stdout, stderr := run(t, url, "token", "create", "--role", "submit", "--queue", "cpu", "--name", "alice", "-o", "json")
	var sub api.CreatedToken
	if code != 0 || json.Unmarshal([]byte(stdout), &sub) != nil || sub.Secret == "" {
		t.Fatalf("token create: exit %d, %q, %s; want a token with its secret", code, stdout, stderr)
	}
	if code, _, stderr := run(t, url, "--token", sub.Secret, "queue", "create", "gpu", "--resource", "local-process"); code != 1 || !strings.Contains(stderr, "forbidden") {
		t.Errorf("queue create with a submit token: exit %d, %q; want 1, forbidden", code, stderr)
	}
	if code, _, stderr := run(t, url, "--token", sub.Secret, "launch", "--entrypoint", "true"); code != 0 {
		t.Errorf("launch with a submit token for cpu: exit %d: %s", code, stderr)
	}
	code, stdout, _ = run(t, url, "token", "list")
	if code != 0 || !strings.Contains(stdout, sub.ID) || !strings.Contains(stdout, "alice") || strings.Contains(stdout, sub.Secret) {
		t.Errorf("token list: exit %d, %q; want %s and alice listed, without the secret", code, stdout, sub.ID)
	}
	if code, _, stderr := run(t, url, "token", "revoke", sub.ID); code != 0 {
		t.Fatalf("token revoke: exit %d: %s", code, stderr)
	}
	if code, _, _ := run(t, url, "--token", sub.Secret, "queue", "list"); code != 1 {
		t.Errorf("queue list with a revoked token: exit %d, want 1", code)
	}

	// Offline, on the database: how the first admin token of a server is made.
	code, stdout, stderr = run(t, "", "token", "create", "--role", "agent", "--queue", "cpu", "--db", dsn)
	if code != 0 || !strings.HasPrefix(stdout, "slw_") {
		t.Errorf("token create --db: exit %d, %q, %s; want the secret", code, stdout, stderr)
	}
	if code, _, stderr := run(t, "", "token", "create", "--role", "boss", "--db", dsn); code != 2 {
		t.Errorf("token create --role boss: exit %d, %s; want 2", code, stderr)
	}
	if code, _, stderr := run(t, "", "server", "--tls-cert", "c.pem", "--db", filepath.Join(t.TempDir(), "x.db"), "--addr", "127.0.0.1:0"); code != 2 || !strings.Contains(stderr, "--tls-key") {
		t.Errorf("server --tls-cert without --tls-key: exit %d, %q; want 2 naming --tls-key", code, stderr)
	}
}

// TestLaunchDirCannotEscape checks that launch --dir refuses a build
// context with a symlink out of its directory, so that a job cannot carry
// the launching machine's files (or, on an agent, the agent's) in its code.
func TestLaunchDirCannotEscape(t *testing.T) {
	url := setup(t)
	if code, _, stderr := run(t, url, "queue", "create", "cpu", "--resource", "local-process"); code != 0 {
		t.Fatalf("queue create: exit %d: %s", code, stderr)
	}
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("hunter2"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"absolute": filepath.Join(outside, "secret"),
		"dotdot":   "../" + filepath.Base(outside) + "/secret",
	} {
		dir := filepath.Join(filepath.Dir(outside), "ctx-"+name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.Symlink(target, filepath.Join(dir, "leak")); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := run(t, url, "launch", "-q", "cpu", "--entrypoint", "true", "--dir", dir)
		if code == 0 || !strings.Contains(stderr, "outside") {
			t.Errorf("launch --dir with a %s symlink out of it: exit %d, %q; want a failure saying it points outside", name, code, stderr)
		}
	}
}

func TestLaunchSecretAndSecretsKey(t *testing.T) {
	useConfig(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	slog.SetDefault(slog.New(slog.DiscardHandler))
	dsn := filepath.Join(t.TempDir(), "slipway.db")
	var sec security
	if err := sec.loadSecretsKey(dsn); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dsn + ".secrets-key")
	if err != nil || fi.Mode().Perm() != 0o600 || len(sec.secretsKey) != 32 {
		t.Fatalf("secrets key file: %v, %v, %d bytes; want 32 bytes, mode 0600", fi, err, len(sec.secretsKey))
	}
	var again security
	if err := again.loadSecretsKey(dsn); err != nil || string(again.secretsKey) != string(sec.secretsKey) {
		t.Fatalf("second load: %v; want the same key", err)
	}
	var pg security
	if err := pg.loadSecretsKey("postgres://u@h/db"); err != nil || pg.secretsKey != nil {
		t.Errorf("postgres without --secrets-key: got %v, %d bytes; want no key", err, len(pg.secretsKey))
	}

	st, err := openStore(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	sec.auth = false
	s, err := startStackWith(ctx, "127.0.0.1:0", st, &config.Agent{MaxJobs: 1}, "", sec, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = s.wait()
		st.Close()
	})
	const value = "tr0ub4dor-and-3-more"
	if code, _, stderr := run(t, s.url, "queue", "create", "cpu", "--resource", "local-process"); code != 0 {
		t.Fatalf("queue create: exit %d: %s", code, stderr)
	}
	code, stdout, stderr := run(t, s.url, "launch", "-q", "cpu", "--entrypoint", "true", "-o", "json",
		"--secret", "DB_PASSWORD="+value, "--secret", "API=ssm:/team/api")
	if code != 0 {
		t.Fatalf("launch --secret: exit %d: %s", code, stderr)
	}
	if strings.Contains(stdout+stderr, value) {
		t.Errorf("launch --secret printed the value: %s", stdout)
	}
	var j struct {
		ID   string `json:"id"`
		Spec struct {
			Secrets []struct{ Name, Ref string } `json:"secrets"`
		} `json:"spec"`
	}
	if err := json.Unmarshal([]byte(stdout), &j); err != nil || len(j.Spec.Secrets) != 2 {
		t.Fatalf("launch -o json: %v, %s; want a job with two secrets", err, stdout)
	}
	if code, stdout, _ := run(t, s.url, "job", "describe", j.ID, "-o", "json"); code != 0 || strings.Contains(stdout, value) {
		t.Errorf("job describe: exit %d; the value is in it: %v", code, strings.Contains(stdout, value))
	}
	if code, _, stderr := run(t, s.url, "launch", "-q", "cpu", "--entrypoint", "true", "--secret", "1BAD="+value); code != 2 || strings.Contains(stderr, value) {
		t.Errorf("launch with a bad secret name: exit %d, %q; want 2 without the value", code, stderr)
	}
}

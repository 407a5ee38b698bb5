package process_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/localaws/localawstest"
	"github.com/slipway-ml/slipway/internal/runner/process"
	"github.com/slipway-ml/slipway/internal/runner/runnertest"
	"github.com/slipway-ml/slipway/internal/secretref"
)

// withSecrets returns a runner resolving references against a local AWS
// endpoint holding a secret "train/token" and a parameter "/train/db".
func withSecrets(t *testing.T, token, db string) *process.Runner {
	t.Helper()
	cfg := localawstest.WithSecrets(t, map[string]string{"train/token": token}, map[string]string{"/train/db": db})
	r, err := process.New(process.Config{WorkDir: t.TempDir(), Grace: 500 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Secrets: secretref.NewFromConfig(cfg)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

func TestReferencesAreResolvedIntoTheSecretsFolderAndRedacted(t *testing.T) {
	t.Parallel()
	const token, db, sealed = "token-from-secrets-manager", "password-from-ssm", "sealed-value-given-at-launch"
	r := withSecrets(t, token, db)
	spec := shell(`d="$SLIPWAY_SECRETS_DIR"
stat -c '%n %a' "$d" "$d/TOKEN" "$d/DB" "$d/SEALED" | sed "s#$d#dir#"
for f in TOKEN DB SEALED; do echo "$f $(sha256sum < "$d/$f" | cut -d' ' -f1)"; done
echo "leak $(cat "$d/TOKEN") $(cat "$d/DB")"
env | grep -c -e "$(cat "$d/TOKEN")" -e "$(cat "$d/DB")" || true
echo "dir $d" >&2
echo "failing with $(cat "$d/DB")" >&2; exit 3`)
	spec.Secrets = []job.Secret{
		{Name: "TOKEN", Ref: "secretsmanager:train/token"},
		{Name: "DB", Ref: "ssm:/train/db"},
		{Name: "SEALED", Ref: job.SealedRef + "c2VhbGVk"},
	}
	task := runnertest.NewTask(spec)
	task.Secrets = map[string]string{"SEALED": sealed}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := r.Start(ctx, task)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	var s runnertest.Sink
	res, err := r.Wait(ctx, task, id, &s)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if want := "exit code 3: failing with [redacted]"; res.State != job.Failed || res.Reason != want {
		t.Errorf("result: got %s %q, want failed %q", res.State, res.Reason, want)
	}
	sum := func(v string) string { h := sha256.Sum256([]byte(v)); return hex.EncodeToString(h[:]) }
	want := []string{"dir 700", "dir/TOKEN 600", "dir/DB 600", "dir/SEALED 600",
		"TOKEN " + sum(token), "DB " + sum(db), "SEALED " + sum(sealed),
		"leak [redacted] [redacted]", "0"}
	if got := s.Lines("stdout"); !slices.Equal(got, want) {
		t.Errorf("stdout: got %q, want %q", got, want)
	}
	all := strings.Join(append(s.Lines("stdout"), s.Lines("stderr")...), "\n") + res.Reason
	for _, v := range []string{token, db} {
		if strings.Contains(all, v) {
			t.Errorf("lines or reason hold the resolved value %q: %s", v, all)
		}
	}
	for _, l := range s.Lines("stderr") {
		if dir, ok := strings.CutPrefix(l, "dir "); ok {
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("secrets folder %s after the run: got %v, want it gone", dir, err)
			}
		}
	}
}

func TestAMissingReferenceFailsTheStartNamingIt(t *testing.T) {
	t.Parallel()
	r := withSecrets(t, "some-token", "some-password")
	for _, ref := range []string{"secretsmanager:train/nope", "ssm:/train/nope"} {
		spec := shell("echo never")
		spec.Secrets = []job.Secret{{Name: "TOKEN", Ref: "secretsmanager:train/token"}, {Name: "MISSING", Ref: ref}}
		_, err := r.Start(context.Background(), runnertest.NewTask(spec))
		if !errors.Is(err, job.ErrNotFound) || !strings.Contains(err.Error(), "MISSING") || !strings.Contains(err.Error(), ref) {
			t.Errorf("Start with %s: got %v, want job.ErrNotFound naming MISSING and %s", ref, err, ref)
		}
	}
}

func TestWithoutAResolverAReferenceIsRefused(t *testing.T) {
	t.Parallel()
	r := newRunner(t)
	spec := shell("echo never")
	spec.Secrets = []job.Secret{{Name: "DB_PASSWORD", Ref: "ssm:/prod/db/password"}}
	_, err := r.Start(context.Background(), runnertest.NewTask(spec))
	if !errors.Is(err, job.ErrInvalid) || !strings.Contains(err.Error(), "DB_PASSWORD") {
		t.Errorf("Start: got %v, want job.ErrInvalid naming DB_PASSWORD", err)
	}
}

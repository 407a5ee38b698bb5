package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/logtest"
	"github.com/slipway-ml/slipway/internal/server"
	"github.com/slipway-ml/slipway/internal/store/sqlite"
)

// TestSecretValueReachesOnlyTheAgent launches a job with a secret value,
// runs it as an agent would (claim, a log line and a reason and an output
// that print the value), and then looks for the value everywhere it must
// not be: the database files, the server's log, and every API answer and
// dashboard page about the job.
func TestSecretValueReachesOnlyTheAgent(t *testing.T) {
	t.Parallel()
	const value = "correct-horse-battery-staple-42"
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := sqlite.Open(ctx, filepath.Join(dir, "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	tok, secret, err := job.NewToken(job.RoleAdmin, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	var logs logtest.Buffer
	key := bytes.Repeat([]byte{7}, 32)
	srv, err := server.New(server.Config{Store: st, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Auth: true, SecretsKey: key})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { cancel(); hs.Close(); st.Close() })
	admin := mustClient(t, hs.URL, secret)
	mustQueue(t, admin, "q", job.LocalProcess)

	var answers []string
	record := func(what string, v any) {
		b, _ := json.Marshal(v)
		answers = append(answers, what+": "+string(b))
	}
	j, err := admin.Enqueue(ctx, api.Enqueue{Queue: "q", Spec: job.Spec{Entrypoint: []string{"true"},
		Secrets: []job.Secret{{Name: "API_KEY", Ref: "ssm:/team/api-key"}}}, Secrets: map[string]string{"DB_PASSWORD": value}})
	if err != nil {
		t.Fatal(err)
	}
	record("enqueue", j)
	if len(j.Spec.Secrets) != 2 {
		t.Fatalf("enqueued secrets: got %+v, want the reference and the sealed value", j.Spec.Secrets)
	}

	agent := tokenClient(t, hs.URL, admin, job.RoleAgent, "q")
	c, err := agent.Claim(ctx, api.Claim{Agent: "a1", Queues: []string{"q"}, Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if c.Secrets["DB_PASSWORD"] != value {
		t.Fatalf("the claiming agent got secrets %v, want DB_PASSWORD's value", c.Secrets)
	}
	lease := c.Job.Lease.Token
	for _, st := range []job.State{job.Building, job.Submitting, job.Starting, job.Running} {
		if _, err := agent.Transition(ctx, j.ID, api.Transition{Token: lease, To: st, Reason: "using " + value}); err != nil {
			t.Fatal(err)
		}
	}
	if err := agent.AppendLogs(ctx, j.ID, lease, []job.LogLine{{Stream: "stdout", Text: "password=" + value, At: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := agent.Transition(ctx, j.ID, api.Transition{Token: lease, To: job.Finished, Reason: "done " + value, Outputs: map[string]string{"echo": value}}); err != nil {
		t.Fatal(err)
	}

	got, err := admin.Job(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	record("job", got)
	list, err := admin.Jobs(ctx, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	record("jobs", list)
	lines, err := admin.Logs(ctx, j.ID, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	record("logs", lines)
	if len(lines.Lines) != 1 || !strings.Contains(lines.Lines[0].Text, "[redacted]") {
		t.Errorf("log lines: got %+v, want the line with the value redacted", lines.Lines)
	}
	for _, page := range []string{"/", "/jobs", "/jobs/" + j.ID, "/queues/q", "/v1/jobs/" + j.ID + "/logs"} {
		req, _ := http.NewRequest(http.MethodGet, hs.URL+page, nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d", page, resp.StatusCode)
		}
		answers = append(answers, page+": "+string(b))
	}
	for _, a := range answers {
		if strings.Contains(a, value) {
			t.Errorf("the secret value is in an answer: %.300s", a)
		}
	}
	if strings.Contains(logs.String(), value) {
		t.Errorf("the secret value is in the server's log")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "slipway.db*"))
	if len(files) == 0 {
		t.Fatal("no database files to search")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(value)) {
			t.Errorf("the secret value is in plaintext in %s", filepath.Base(f))
		}
	}
}

func TestSecretValuesNeedAKey(t *testing.T) {
	t.Parallel()
	_, admin, _ := authSetup(t)
	mustQueue(t, admin, "q", job.LocalProcess)
	_, err := admin.Enqueue(context.Background(), api.Enqueue{Queue: "q", Spec: job.Spec{Entrypoint: []string{"true"}}, Secrets: map[string]string{"X": "value"}})
	if !errors.Is(err, job.ErrInvalid) || !strings.Contains(err.Error(), "secrets key") {
		t.Errorf("a secret value on a server without a key: got %v, want ErrInvalid naming the secrets key", err)
	}
	_, err = admin.Enqueue(context.Background(), api.Enqueue{Queue: "q", Spec: job.Spec{Entrypoint: []string{"true"},
		Secrets: []job.Secret{{Name: "X", Ref: "vault:/x"}}}})
	if !errors.Is(err, job.ErrInvalid) {
		t.Errorf("an unknown secret reference: got %v, want ErrInvalid", err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := server.New(server.Config{Store: st, SecretsKey: []byte("short")}); !errors.Is(err, job.ErrInvalid) {
		t.Errorf("a server with a short secrets key: got %v, want ErrInvalid", err)
	}
}

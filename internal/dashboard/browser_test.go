package dashboard_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/agent"
	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/dashboard"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
	"github.com/slipway-ml/slipway/internal/runner/process"
	"github.com/slipway-ml/slipway/internal/server"
	"github.com/slipway-ml/slipway/internal/store/sqlite"
)

// chromium returns Debian's chromium, skipping the test when it is missing
// unless SLIPWAY_REQUIRE_DOCKER=1 (make test), where it fails instead.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("SLIPWAY_REQUIRE_DOCKER") == "1" {
		t.Fatal("chromium is missing (scripts/deps.sh installs it) and SLIPWAY_REQUIRE_DOCKER=1")
	}
	t.Skip("chromium is missing; scripts/deps.sh installs it")
	return ""
}

// browser runs headless chromium on url with extra flags and returns what
// it printed on stdout.
func browser(t *testing.T, bin, url string, flags ...string) string {
	t.Helper()
	// A bound on a hung browser, not a timing assertion.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
		"--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir(),
	}, flags...)
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", url, err, stderr.String())
	}
	return stdout.String()
}

// stack is a real server with the dashboard mounted as the server will
// mount it, a real agent with the process runner, and a client.
type stack struct {
	url    string
	c      *client.Client
	tailed chan struct{} // closed when a browser first long-polls a job's logs
}

func startStack(t *testing.T) *stack {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Store: st, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	dash, err := dashboard.New(dashboard.Config{Store: st, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{tailed: make(chan struct{})}
	var once sync.Once
	mux := http.NewServeMux()
	mux.Handle("/v1/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/logs") && r.URL.Query().Get("wait") != "" {
			once.Do(func() { close(s.tailed) })
		}
		srv.ServeHTTP(w, r)
	}))
	mux.Handle("/healthz", srv)
	mux.Handle("/", dash)
	done := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(done) }()
	hs := httptest.NewServer(mux)
	s.url = hs.URL
	if s.c, err = client.New(hs.URL); err != nil {
		t.Fatal(err)
	}
	pr, err := process.New(process.Config{WorkDir: t.TempDir(), Grace: 2 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ag, err := agent.New(agent.Config{
		Client: s.c, Queues: []string{api.AllQueues}, MaxJobs: 2, Logger: quiet, ClaimWait: 2 * time.Second, Name: "e2e-agent",
		Runner: func(job.Queue) (runner.Runner, error) { return pr, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	agentDone := make(chan struct{})
	go func() { _ = ag.Run(ctx); close(agentDone) }()
	t.Cleanup(func() {
		cancel()
		<-agentDone
		hs.CloseClientConnections()
		hs.Close()
		<-done
		st.Close()
	})
	return s
}

// waitFor polls the job until cond holds, failing after a generous bound.
func (s *stack) waitFor(t *testing.T, id, what string, cond func(job.Job, []job.LogLine) bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		j, err := s.c.Job(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		l, err := s.c.Logs(context.Background(), id, 0, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if cond(j, l.Lines) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s never %s; last state %s (%s)", id, what, j.State, j.Reason)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hasLine(lines []job.LogLine, text string) bool {
	for _, l := range lines {
		if l.Text == text {
			return true
		}
	}
	return false
}

// TestBrowserWatchesAJobToTheEnd enqueues a job and watches it in headless
// chromium: the job page is opened while the job runs, its script tails the
// log (a line printed only after the page loaded must show up) and sees the
// job finish; the jobs page then lists it as finished.
func TestBrowserWatchesAJobToTheEnd(t *testing.T) {
	bin := chromium(t)
	s := startStack(t)
	ctx := context.Background()
	if _, err := s.c.CreateQueue(ctx, api.CreateQueue{Name: "e2e", Resource: job.LocalProcess}); err != nil {
		t.Fatal(err)
	}
	gate := filepath.Join(t.TempDir(), "go")
	script := fmt.Sprintf("echo hello-from-job; while [ ! -e %s ]; do sleep 0.05; done; echo bye-from-job", gate)
	j, err := s.c.Enqueue(ctx, api.Enqueue{Queue: "e2e", Spec: job.Spec{Entrypoint: []string{"sh", "-c", script}}})
	if err != nil {
		t.Fatal(err)
	}

	overview := browser(t, bin, s.url+"/", "--dump-dom")
	for _, want := range []string{`data-queue="e2e"`, `data-job="` + j.ID + `"`} {
		if !strings.Contains(overview, want) {
			t.Errorf("overview in chromium lacks %s:\n%s", want, overview)
		}
	}

	s.waitFor(t, j.ID, "printed its first line", func(j job.Job, l []job.LogLine) bool {
		return j.State == job.Running && hasLine(l, "hello-from-job")
	})
	// Let the job end only once the page's script is tailing its log, so the
	// last line can only reach the page through the script.
	go func() {
		<-s.tailed
		_ = os.WriteFile(gate, nil, 0o644)
	}()
	page := browser(t, bin, s.url+"/jobs/"+j.ID, "--dump-dom", "--virtual-time-budget=120000")
	for _, want := range []string{
		"hello-from-job",
		"bye-from-job",
		`id="state" class="state s-finished">finished</span>`,
		"The job has ended finished.",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("job page in chromium lacks %q:\n%s", want, page)
		}
	}

	s.waitFor(t, j.ID, "finished", func(j job.Job, _ []job.LogLine) bool { return j.State.Terminal() })
	list := browser(t, bin, s.url+"/jobs?queue=e2e&state=finished", "--dump-dom")
	if !strings.Contains(list, `data-job="`+j.ID+`"`) {
		t.Errorf("jobs page filtered on finished lacks %s:\n%s", j.ID, list)
	}
	if dir := os.Getenv("SLIPWAY_SCREENSHOTS"); dir != "" {
		for name, path := range map[string]string{"overview": "/", "job": "/jobs/" + j.ID, "agents": "/agents"} {
			browser(t, bin, s.url+path, "--screenshot="+filepath.Join(dir, name+".png"), "--window-size=1280,1100", "--hide-scrollbars")
		}
	}
}

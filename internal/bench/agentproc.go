package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/agent"
	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/metrics"
	"github.com/slipway-ml/slipway/internal/runner"
	"github.com/slipway-ml/slipway/internal/runner/sagemaker"
)

// AgentEnv, set in a test binary's environment, makes RunAgentIfAsked run
// the footprint's agent instead of the tests: the footprint measures the
// agent in a process of its own, and under `go test` that process is the
// test binary itself, started again.
const AgentEnv = "SLIPWAY_BENCH_FOOTPRINT_AGENT"

// childAgent is what the footprint's agent process is told, as JSON in
// AgentEnv when it is a test binary.
type childAgent struct {
	Server      string        `json:"server"`
	Queue       string        `json:"queue"`
	Endpoint    string        `json:"endpoint"`
	MetricsAddr string        `json:"metrics_addr"`
	PollMin     time.Duration `json:"poll_min"`
	PollMax     time.Duration `json:"poll_max"`
	LogPoll     time.Duration `json:"log_poll"`
}

// RunAgentIfAsked runs the footprint's agent and exits when AgentEnv is set;
// else it returns at once. A test binary whose tests measure the footprint
// calls it first thing in TestMain.
func RunAgentIfAsked() {
	v := os.Getenv(AgentEnv)
	if v == "" {
		return
	}
	var c childAgent
	if err := json.Unmarshal([]byte(v), &c); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", AgentEnv, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := runChildAgent(ctx, c); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "footprint agent: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// runChildAgent is the agent of a test binary started for the footprint:
// the SageMaker runner on c.Endpoint with c's polling, metrics served as
// `slipway agent --metrics-addr` serves them.
func runChildAgent(ctx context.Context, c childAgent) error {
	agent.TuneGC()
	log := slog.New(slog.DiscardHandler)
	ln, err := net.Listen("tcp", c.MetricsAddr)
	if err != nil {
		return fmt.Errorf("listening for metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Default.Handler(nil))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	r, err := sagemaker.New(ctx, sagemaker.Config{Region: "us-east-1", Endpoint: c.Endpoint, Logger: log,
		PollMin: c.PollMin, PollMax: c.PollMax, LogPoll: c.LogPoll, APIOptions: metrics.Default.AWSAPIOptions()})
	if err != nil {
		return err
	}
	cl, err := client.New(c.Server)
	if err != nil {
		return err
	}
	a, err := agent.New(agent.Config{Client: cl, Queues: []string{c.Queue}, MaxJobs: -1, Name: "bench-footprint",
		Logger: log, Runner: func(q job.Queue) (runner.Runner, error) { return r.ForQueue(q), nil }})
	if err != nil {
		return fmt.Errorf("starting agent: %w", err)
	}
	return a.Run(ctx)
}

// agentProc is the footprint's agent, running in a process of its own.
type agentProc struct {
	cmd     *exec.Cmd
	metrics string // base URL of its /metrics
	exited  chan struct{}
	stderr  *tailBuffer
	err     error // how it exited, once exited is closed
}

// startAgentProc starts the agent for the footprint in its own process:
// `slipway agent` from this executable when this is the slipway binary, or
// this test binary again (see RunAgentIfAsked) under `go test`. Its AWS
// calls go to endpoint.
func startAgentProc(server, queue, endpoint string, cfg FootprintConfig) (*agentProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this executable: %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	// The service endpoints, not AWS_ENDPOINT_URL: `slipway agent` polls
	// closely when AWS_ENDPOINT_URL is on loopback (a local endpoint has no
	// quotas), and the footprint must see the polling it does against AWS.
	env := append(os.Environ(), "AWS_ENDPOINT_URL=", "AWS_REGION=us-east-1",
		"AWS_ENDPOINT_URL_SAGEMAKER="+endpoint, "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS="+endpoint,
		"SLIPWAY_SERVER=", "SLIPWAY_TOKEN=", AgentEnv+"=")
	var args []string
	if testing.Testing() {
		b, err := json.Marshal(childAgent{Server: server, Queue: queue, Endpoint: endpoint, MetricsAddr: addr,
			PollMin: cfg.PollMin, PollMax: cfg.PollMax, LogPoll: cfg.LogPoll})
		if err != nil {
			return nil, err
		}
		env = append(env, AgentEnv+"="+string(b))
		args = []string{"-test.run=^$", "-test.bench=^$"}
	} else {
		if cfg.PollMin != 0 || cfg.PollMax != 0 || cfg.LogPoll != 0 {
			return nil, fmt.Errorf("%w: `slipway agent` polls at the runner's defaults; other polling is measured under go test only", job.ErrInvalid)
		}
		args = []string{"agent", "--server", server, "-q", queue, "--max-jobs", "-1", "--name", "bench-footprint",
			"--metrics-addr", addr}
	}
	p := &agentProc{metrics: "http://" + addr + "/metrics", exited: make(chan struct{}), stderr: &tailBuffer{max: 8 << 10}}
	p.cmd = exec.Command(exe, args...)
	p.cmd.Env = env
	p.cmd.Stdout = io.Discard
	p.cmd.Stderr = p.stderr
	// The agent must not outlive a measuring process that dies.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the agent process: %w", err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	return p, nil
}

// freeAddr returns a loopback address no one listens on at the moment.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// alive returns an error, with the end of its output, when the agent
// process has exited.
func (p *agentProc) alive() error {
	select {
	case <-p.exited:
		return fmt.Errorf("the agent process exited (%v); its last output:\n%s", p.err, p.stderr)
	default:
		return nil
	}
}

// memMB is the agent process's resident memory (VmRSS) and the anonymous
// part of it (RssAnon: heap, stacks, runtime), in MB. The rest is mostly
// the executable's own pages, file-backed and shared with the page cache.
func (p *agentProc) memMB() (rss, anon float64, err error) {
	if err := p.alive(); err != nil {
		return 0, 0, err
	}
	status := fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid)
	rssKB, ok := procKB(status, "VmRSS")
	anonKB, ok2 := procKB(status, "RssAnon")
	if !ok || !ok2 {
		return 0, 0, fmt.Errorf("reading VmRSS and RssAnon of process %d", p.cmd.Process.Pid)
	}
	return float64(rssKB) / 1024, float64(anonKB) / 1024, nil
}

// goStats reads the Go heap and stacks in use (MB) and the goroutines from
// the agent's metrics, waiting for them to be served.
func (p *agentProc) goStats(ctx context.Context) (heapMB, stackMB float64, goroutines int, err error) {
	for {
		var m map[string]float64
		if m, err = scrape(ctx, p.metrics); err == nil {
			return m["go_memstats_heap_inuse_bytes"] / (1 << 20), m["go_memstats_stack_inuse_bytes"] / (1 << 20),
				int(m["go_goroutines"]), nil
		}
		if aerr := p.alive(); aerr != nil {
			return 0, 0, 0, aerr
		}
		if perr := pause(ctx, 100*time.Millisecond); perr != nil {
			return 0, 0, 0, fmt.Errorf("reading the agent's metrics: %w", errors.Join(perr, err))
		}
	}
}

// cpuSeconds is the agent process's CPU time so far, from its metrics.
func (p *agentProc) cpuSeconds(ctx context.Context) (float64, error) {
	m, err := scrape(ctx, p.metrics)
	if err != nil {
		return 0, fmt.Errorf("reading the agent's CPU time: %w", err)
	}
	return m["process_cpu_seconds_total"], nil
}

// filePMDMB is how much of the agent's file-backed memory is mapped as
// huge pages (FilePmdMapped), in MB; 0 when the kernel does not say.
func (p *agentProc) filePMDMB() float64 {
	kb, _ := procKB(fmt.Sprintf("/proc/%d/smaps_rollup", p.cmd.Process.Pid), "FilePmdMapped")
	return float64(kb) / 1024
}

// forgetAccesses clears the kernel's accessed bits of the agent's pages, so
// that fileMB counts the pages accessed from now on.
func (p *agentProc) forgetAccesses() error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.cmd.Process.Pid), []byte("1"), 0)
}

// fileMB is the agent's resident file-backed memory and the part of it
// accessed since forgetAccesses, in MB (smaps' Rss and Referenced of the
// mappings of a file); zeros when smaps cannot be read.
func (p *agentProc) fileMB() (resident, accessed float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0
	}
	var rss, ref int64
	file := false
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case strings.Contains(f[0], "-"): // a mapping's header: range, perms, offset, device, inode[, path]
			file = len(f) >= 6 && f[4] != "0"
		case file && (f[0] == "Rss:" || f[0] == "Referenced:") && len(f) >= 2:
			n, _ := strconv.ParseInt(f[1], 10, 64)
			if f[0] == "Rss:" {
				rss += n
			} else {
				ref += n
			}
		}
	}
	return float64(rss) / 1024, float64(ref) / 1024
}

// scrape reads the unlabelled samples of a Prometheus text page.
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return parseSamples(resp.Body)
}

// parseSamples returns the samples without labels of a Prometheus text
// page by name ("go_goroutines 12" gives go_goroutines: 12).
func parseSamples(r io.Reader) (map[string]float64, error) {
	m := map[string]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || strings.ContainsRune(line, '{') {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			m[f[0]] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading metrics: %w", err)
	}
	return m, nil
}

// stop asks the agent to shut down (SIGTERM: it hands its SageMaker jobs
// back) and kills it if it has not exited within a few seconds.
func (p *agentProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

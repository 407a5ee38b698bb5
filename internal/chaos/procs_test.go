package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/cli"
)

// mainArgs, when set in the environment, makes the test binary run the
// slipway command line with these JSON-encoded arguments instead of the
// tests: a real server or agent process that the suite can SIGKILL.
const mainArgs = "SLIPWAY_TEST_MAIN_ARGS"

func TestMain(m *testing.M) {
	if v := os.Getenv(mainArgs); v != "" {
		var args []string
		if err := json.Unmarshal([]byte(v), &args); err != nil {
			panic(err)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := cli.Execute(ctx, args, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// proc is one slipway process of the suite.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// spawn starts `slipway args...` as a process of its own, its output in a
// log file of dir that the test prints when it fails.
func spawn(t *testing.T, dir, name string, env []string, args ...string) *proc {
	t.Helper()
	b, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(append(os.Environ(), env...), mainArgs+"="+string(b))
	log, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(p.kill)
	return p
}

// kill ends the process with SIGKILL and waits for it.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// freeAddr returns a loopback address nothing listens on now, for a
// server that must come back on the same address after a restart.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitHealthy waits until the server at url answers.
func waitHealthy(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server at %s never answered: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// printLogs prints the suite's process logs when the test failed.
func printLogs(t *testing.T, dir string) {
	if !t.Failed() {
		return
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if len(b) > 20000 {
			b = b[len(b)-20000:]
		}
		t.Logf("--- %s (tail):\n%s", filepath.Base(f), b)
	}
}

func figureLine(name string, v any) string { return fmt.Sprintf("  %-28s %v\n", name+":", v) }

package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/logtest"
)

// useConfig points the CLI at a config file holding body, with neither
// SLIPWAY_SERVER nor SLIPWAY_TOKEN set. Tests that call it cannot be
// parallel: they set the process's environment.
func useConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "slipway", "config.yaml")
	if body != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("SLIPWAY_CONFIG", path)
	t.Setenv("SLIPWAY_SERVER", "")
	t.Setenv("SLIPWAY_TOKEN", "")
	return path
}

func TestConfigFileGivesServerAndDefaultQueue(t *testing.T) {
	url, c := serverOnly(t)
	useConfig(t, "server: "+url+"\nqueue: cpu\n")
	if code, _, stderr := run(t, "", "queue", "create", "cpu", "--resource", "local-process"); code != 0 {
		t.Fatalf("queue create with the server from the config file: exit %d: %s", code, stderr)
	}
	code, stdout, stderr := run(t, "", "launch", "--entrypoint", "true")
	if code != 0 {
		t.Fatalf("launch without -q: exit %d: %s", code, stderr)
	}
	j, err := c.Job(context.Background(), strings.TrimSpace(stdout))
	if err != nil || j.Queue != "cpu" {
		t.Fatalf("launched job: %+v, %v; want one on the config file's queue cpu", j, err)
	}
	if code, _, stderr := run(t, "", "launch", "-q", "other", "--entrypoint", "true"); code != 1 || !strings.Contains(stderr, `queue "other"`) {
		t.Errorf("launch -q other: exit %d, %q; want the flag to win over the file", code, stderr)
	}
	if code, _, stderr := run(t, "http://127.0.0.1:1", "queue", "list"); code != 1 || !strings.Contains(stderr, "127.0.0.1:1") {
		t.Errorf("--server over the file: exit %d, %q; want the flag's server tried", code, stderr)
	}
	code, stdout, _ = run(t, "", "config")
	for _, want := range []string{"server  " + url + "  (config file)", "(default)\nqueue   cpu"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("slipway config: exit %d, %q; want it to show %q", code, stdout, want)
		}
	}
}

func TestConfigSetAndBadFiles(t *testing.T) {
	path := useConfig(t, "")
	if code, stdout, _ := run(t, "", "config", "path"); code != 0 || strings.TrimSpace(stdout) != path {
		t.Fatalf("config path: exit %d, %q; want %s", code, stdout, path)
	}
	if code, _, stderr := run(t, "", "config", "set", "token", "s3cr3t"); code != 0 {
		t.Fatalf("config set token: exit %d: %s", code, stderr)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config file after set: %v, %v; want it created with mode 0600", st, err)
	}
	if code, stdout, _ := run(t, "", "config", "-o", "json"); code != 0 || !strings.Contains(stdout, `"(set, 6 characters)"`) || strings.Contains(stdout, "s3cr3t") {
		t.Errorf("config -o json: exit %d, %q; want the token shown as set, never printed", code, stdout)
	}
	tests := []struct {
		args    []string
		code    int
		mention string
	}{
		{[]string{"config", "set", "colour", "blue"}, 2, "colour"},
		{[]string{"config", "set", "queue", "no spaces"}, 2, "queue name"},
		{[]string{"config", "set", "server", "ftp://x"}, 2, "server"},
	}
	for _, tt := range tests {
		if code, _, stderr := run(t, "", tt.args...); code != tt.code || !strings.Contains(stderr, tt.mention) {
			t.Errorf("slipway %s: exit %d, %q; want %d naming %q", strings.Join(tt.args, " "), code, stderr, tt.code, tt.mention)
		}
	}
	if err := os.WriteFile(path, []byte("sever: http://x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, "", "queue", "list"); code != 2 || !strings.Contains(stderr, "sever") || !strings.Contains(stderr, path) {
		t.Errorf("a misspelt key: exit %d, %q; want 2 naming the key and the file", code, stderr)
	}
}

func TestParseUserConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    userConfig
		wantErr string
	}{
		{"", userConfig{}, ""},
		{"# nothing\n", userConfig{}, ""},
		{"server: http://h:1\ntoken: t\nqueue: q\n", userConfig{Server: "http://h:1", Token: "t", Queue: "q"}, ""},
		{"server: h:7070", userConfig{Server: "h:7070"}, ""},
		{"queue: [a]", userConfig{}, "cannot unmarshal"},
		{"Server: http://h", userConfig{}, "Server"},
		{"token: 'a b'", userConfig{}, "whitespace"},
		{"queue: -bad", userConfig{}, "queue name"},
		{"- a\n- b", userConfig{}, "cannot unmarshal"},
	}
	for _, tt := range tests {
		got, err := parseUserConfig([]byte(tt.in))
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("parseUserConfig(%q): got error %v, want %+v", tt.in, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("parseUserConfig(%q): got error %v, want one mentioning %q", tt.in, err, tt.wantErr)
		case err == nil && got != tt.want:
			t.Errorf("parseUserConfig(%q): got %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func FuzzParseUserConfig(f *testing.F) {
	f.Add([]byte("server: http://h:1\ntoken: t\nqueue: q\n"))
	f.Add([]byte("queue: &a [*a]"))
	f.Add([]byte("server: !!binary aGk="))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseUserConfig(b)
		if err != nil {
			return
		}
		if c.Queue != "" && job.ValidateQueueName(c.Queue) != nil {
			t.Fatalf("accepted queue %q that is not a valid queue name", c.Queue)
		}
		if strings.ContainsAny(c.Token, " \t\r\n") {
			t.Fatalf("accepted token %q with whitespace", c.Token)
		}
	})
}

func TestCompletionScripts(t *testing.T) {
	t.Parallel()
	for shell, want := range map[string]string{"bash": "__start_slipway", "zsh": "#compdef slipway", "fish": "complete -c slipway"} {
		code, stdout, stderr := run(t, "", "completion", shell)
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("completion %s: exit %d, %.200q %q; want a script containing %q", shell, code, stdout, stderr, want)
		}
	}
	if code, _, stderr := run(t, "", "completion", "tcsh"); code != 2 || !strings.Contains(stderr, "tcsh") {
		t.Errorf("completion tcsh: exit %d, %q; want 2 naming the shell", code, stderr)
	}
}

func TestCompletionAsksTheServer(t *testing.T) {
	url := setup(t)
	run(t, url, "queue", "create", "cpu", "--resource", "local-process")
	code, stdout, _ := run(t, url, "launch", "-q", "cpu", "--entrypoint", "true")
	if code != 0 {
		t.Fatal("launch failed")
	}
	id := strings.TrimSpace(stdout)
	tests := []struct{ args []string }{
		{[]string{"__complete", "launch", "-q", ""}},
		{[]string{"__complete", "job", "why", ""}},
	}
	wants := []string{"cpu\tlocal-process", id + "\tcpu"}
	for i, tt := range tests {
		code, stdout, stderr := run(t, url, tt.args...)
		if code != 0 || !strings.Contains(stdout, wants[i]) {
			t.Errorf("slipway %s: exit %d, %q %q; want a candidate %q", strings.Join(tt.args, " "), code, stdout, stderr, wants[i])
		}
	}
}

func TestEveryCommandHasHelpWithExamples(t *testing.T) {
	t.Parallel()
	root := (&app{}).rootCmd()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s: --help has no example", c.CommandPath())
		}
		if c.Short == "" {
			t.Errorf("%s: no short description", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	code, stdout, _ := run(t, "", "job", "why", "--help")
	if code != 0 || !strings.Contains(stdout, "Examples:\n  slipway job why j-") {
		t.Errorf("job why --help: exit %d, %q; want its examples", code, stdout)
	}
}

// TestLogFormatJSON runs `slipway server --log-format json` and reads its
// log: one JSON object a line.
func TestLogFormatJSON(t *testing.T) {
	useConfig(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	var stderr logtest.Buffer
	done := make(chan int)
	go func() {
		done <- Execute(ctx, []string{"--log-format", "json", "server", "--addr", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "s.db")}, &bytes.Buffer{}, &stderr)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "listening") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("server: exit %d: %s", code, stderr.String())
	}
	sc := bufio.NewScanner(strings.NewReader(stderr.String()))
	n := 0
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || rec["level"] == nil || rec["msg"] == nil {
			t.Errorf("log line %q: want a JSON object with level and msg (%v)", sc.Text(), err)
		}
		n++
	}
	if n == 0 || !strings.Contains(stderr.String(), `"msg":"slipway server listening"`) {
		t.Errorf("server log: %q; want JSON lines, one of them the listening message", stderr.String())
	}
	if code, _, errOut := run(t, "", "--log-format", "xml", "queue", "list"); code != 2 || !strings.Contains(errOut, "--log-format") {
		t.Errorf("--log-format xml: exit %d, %q; want 2 naming the flag", code, errOut)
	}
}

// TestLoggingLeavesTheDefaultAlone: a command line that writes to buffers
// does not make the process's default logger write to them, so command
// lines run side by side in one process keep their logs apart.
func TestLoggingLeavesTheDefaultAlone(t *testing.T) {
	before := slog.Default()
	run(t, "http://127.0.0.1:1", "--log-format", "json", "queue", "list") // fails: nothing listens there
	if slog.Default() != before {
		t.Error("a command line writing to a buffer replaced slog.Default(); want it left alone")
	}
}

package cli

import (
	"bytes"
	"os"
	"testing"

	"github.com/slipway-ml/slipway/internal/job"
)

func TestLiveLineRewritesOnATerminalOnly(t *testing.T) {
	t.Parallel()
	var tty, plain, out bytes.Buffer
	a := &app{stdout: &out, stderr: &tty}
	live := &liveLine{w: &tty, tty: true}
	for _, l := range []job.LogLine{
		{Stream: "build", Text: "Step 1/2"},
		{Stream: "build", Text: "Step 2/2\tdone"},
		{Stream: "stdout", Text: "trained"},
	} {
		a.printLiveLine(live, l)
	}
	live.done()
	if got, want := tty.String(), "\r\x1b[Kbuild: Step 1/2\r\x1b[Kbuild: Step 2/2 done\n"; got != want {
		t.Errorf("terminal: got %q, want %q", got, want)
	}
	if got, want := out.String(), "trained\n"; got != want {
		t.Errorf("stdout: got %q, want %q", got, want)
	}

	a = &app{stdout: &out, stderr: &plain}
	live = newLiveLine(&plain)
	a.printLiveLine(live, job.LogLine{Stream: "build", Text: "Step 1/2"})
	a.printLiveLine(live, job.LogLine{Stream: "build", Text: "Step 2/2"})
	live.done()
	if got, want := plain.String(), "build: Step 1/2\nbuild: Step 2/2\n"; got != want {
		t.Errorf("not a terminal: got %q, want %q", got, want)
	}
}

func TestIsTerminal(t *testing.T) {
	t.Parallel()
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a regular file: got a terminal, want none")
	}
	if isTerminal(&bytes.Buffer{}) {
		t.Error("a buffer: got a terminal, want none")
	}
	if dev, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
		defer dev.Close()
		if isTerminal(dev) {
			t.Error("/dev/null: got a terminal, want none (a character device, but not a terminal)")
		}
	}
}

func TestByteSize(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		n    int64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1536, "1.5 KiB"}, {5 << 20, "5.0 MiB"}} {
		if got := byteSize(tt.n); got != tt.want {
			t.Errorf("byteSize(%d): got %q, want %q", tt.n, got, tt.want)
		}
	}
}

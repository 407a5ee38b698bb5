// Package dockerlogs reads a container's output from the Docker engine line
// by line, without losing the last lines of a container that exits quickly.
//
// A followed log stream from the engine leaves out a stream's last line
// when it has no newline (moby#43860; every time with Docker 20.10 here).
// Follow therefore reads the log's last entries once more after the
// container has stopped, and passes on such a line from them.
package dockerlogs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// Client is the part of the Docker Engine API client Follow uses.
type Client interface {
	ContainerLogs(ctx context.Context, id string, opts container.LogsOptions) (io.ReadCloser, error)
	ContainerWait(ctx context.Context, id string, cond container.WaitCondition) (<-chan container.WaitResponse, <-chan error)
}

// Line is one line of a container's output, without its newline.
type Line struct {
	Stderr bool
	Text   string
}

// Options says which part of the log to read and how to cut it.
type Options struct {
	// Since is passed to the engine as LogsOptions.Since: read only lines
	// written at or after it. Empty: the whole log.
	Since string
	// Timestamps prefixes each line with the engine's RFC 3339 time and a
	// space.
	Timestamps bool
	// MaxLine is the longest line passed on; a longer one arrives as
	// several lines of at most MaxLine bytes, none of it lost. Default 64 KiB.
	MaxLine int
}

// Follow calls fn, from one goroutine, for each line the container writes
// to stdout or stderr, until the container has stopped and every line is
// passed on, or ctx ends. Lines arrive in the order the engine stored them.
func Follow(ctx context.Context, cli Client, id string, o Options, fn func(Line)) error {
	if o.MaxLine <= 0 {
		o.MaxLine = 64 << 10
	}
	stdout := &cutter{max: o.MaxLine, emit: func(s string) { fn(Line{Text: s}) }}
	stderr := &cutter{max: o.MaxLine, emit: func(s string) { fn(Line{Stderr: true, Text: s}) }}
	followErr := read(ctx, cli, id, container.LogsOptions{Follow: true, Since: o.Since, Timestamps: o.Timestamps}, stdout, stderr)
	if err := ctx.Err(); err != nil {
		return err
	}
	okc, errc := cli.ContainerWait(ctx, id, container.WaitConditionNotRunning)
	select {
	case <-okc:
	case err := <-errc:
		if followErr != nil {
			return followErr
		}
		return fmt.Errorf("waiting for container %s to stop: %w", id, err)
	}
	// A stream's last line without newline reached the follow, or not: then
	// it is among the log's last entries (one a stream), stored as the
	// container closed its output. Only such a line is taken from them;
	// lines that end in a newline came through the follow.
	tails := [2]*cutter{{max: math.MaxInt, emit: func(string) {}}, {max: math.MaxInt, emit: func(string) {}}}
	err := read(ctx, cli, id, container.LogsOptions{Tail: "2", Since: o.Since, Timestamps: o.Timestamps}, tails[0], tails[1])
	for i, c := range []*cutter{stdout, stderr} {
		if len(c.buf) == 0 {
			c.buf = tails[i].buf
		}
		c.flush()
	}
	return err
}

// read copies the log, as opts select it, into the two streams' writers.
func read(ctx context.Context, cli Client, id string, opts container.LogsOptions, stdout, stderr io.Writer) error {
	opts.ShowStdout, opts.ShowStderr = true, true
	rc, err := cli.ContainerLogs(ctx, id, opts)
	if err != nil {
		return fmt.Errorf("reading logs of container %s: %w", id, err)
	}
	defer rc.Close()
	if _, err := stdcopy.StdCopy(stdout, stderr, rc); err != nil {
		return fmt.Errorf("reading logs of container %s: %w", id, err)
	}
	return nil
}

// cutter cuts one demultiplexed stream into lines (dropping "\n" and a
// "\r" before it), splitting lines longer than max.
type cutter struct {
	max  int
	emit func(string)
	buf  []byte
}

func (w *cutter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.split(bytes.TrimSuffix(w.buf[:i], []byte("\r")))
		w.buf = w.buf[i+1:]
	}
	// A line of exactly max bytes (and its "\r") waits for its newline, so
	// that where the engine's frames end never changes how a line is cut.
	for len(w.buf) > w.max && !(len(w.buf) == w.max+1 && w.buf[w.max] == '\r') {
		w.emit(string(w.buf[:w.max]))
		w.buf = w.buf[w.max:]
	}
	// Start the next write on a fresh slice so the consumed prefix is freed.
	w.buf = append([]byte(nil), w.buf...)
	return len(p), nil
}

func (w *cutter) split(b []byte) {
	for len(b) > w.max {
		w.emit(string(b[:w.max]))
		b = b[w.max:]
	}
	w.emit(string(b))
}

// flush passes on what is left after the stream's last newline.
func (w *cutter) flush() {
	if len(w.buf) > 0 {
		w.split(w.buf)
		w.buf = nil
	}
}

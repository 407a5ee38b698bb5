// Package dockerlogs reads a container's output from the Docker engine line
// by line, without losing the last lines of a container that exits quickly.
//
// The engine can end a followed log stream when the container stops before
// it has sent the last lines written (seen with Docker 20.10 on containers
// that print and exit at once). Follow therefore reads the log once more,
// without following, after the container has stopped, and passes on only
// the lines the followed stream did not have.
package dockerlogs

import (
	"bytes"
	"context"
	"fmt"
	"io"

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
	seen, followErr := read(ctx, cli, id, o, true, 0, fn)
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
	_, err := read(ctx, cli, id, o, false, seen, fn)
	return err
}

// read reads the log once, following it or not, passes on the complete
// lines after the first skip and returns how many complete lines it read. A
// followed read keeps a last line without newline back: the read after it
// will see it whole.
func read(ctx context.Context, cli Client, id string, o Options, follow bool, skip int, fn func(Line)) (int, error) {
	rc, err := cli.ContainerLogs(ctx, id, container.LogsOptions{
		ShowStdout: true, ShowStderr: true, Follow: follow, Since: o.Since, Timestamps: o.Timestamps,
	})
	if err != nil {
		return 0, fmt.Errorf("reading logs of container %s: %w", id, err)
	}
	defer rc.Close()
	c := &counter{skip: skip, fn: fn}
	stdout := &cutter{max: o.MaxLine, emit: func(s string) { c.line(Line{Text: s}) }}
	stderr := &cutter{max: o.MaxLine, emit: func(s string) { c.line(Line{Stderr: true, Text: s}) }}
	if _, err := stdcopy.StdCopy(stdout, stderr, rc); err != nil {
		return c.seen, fmt.Errorf("reading logs of container %s: %w", id, err)
	}
	if !follow {
		stdout.flush()
		stderr.flush()
	}
	return c.seen, nil
}

// counter numbers the lines of one read and passes on those after skip.
type counter struct {
	skip, seen int
	fn         func(Line)
}

func (c *counter) line(l Line) {
	c.seen++
	if c.seen > c.skip {
		c.fn(l)
	}
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

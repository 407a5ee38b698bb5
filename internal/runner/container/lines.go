package container

import (
	"bytes"
	"strings"

	"github.com/slipway-ml/slipway/internal/runner"
	"github.com/slipway-ml/slipway/internal/runner/process"
)

// lineWriter cuts one demultiplexed stream into lines for a Sink, splitting
// lines longer than process.MaxLine as the process runner does. It is used by
// one goroutine; last is read once that goroutine is done.
type lineWriter struct {
	stream   string
	sink     runner.Sink
	keepLast bool   // remember the last non-empty line, for failure reasons
	last     string // the last non-empty line, when keepLast
	buf      []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(bytes.TrimSuffix(w.buf[:i], []byte("\r")))
		w.buf = w.buf[i+1:]
	}
	for len(w.buf) >= process.MaxLine {
		w.emit(w.buf[:process.MaxLine])
		w.buf = w.buf[process.MaxLine:]
	}
	// Start the next write on a fresh slice so the consumed prefix is freed.
	w.buf = append([]byte(nil), w.buf...)
	return len(p), nil
}

func (w *lineWriter) emit(b []byte) {
	for len(b) > process.MaxLine {
		w.emit(b[:process.MaxLine])
		b = b[process.MaxLine:]
	}
	line := string(b)
	if w.keepLast && strings.TrimSpace(line) != "" {
		w.last = line
	}
	w.sink.Log(w.stream, line)
}

// flush emits what is left after the stream's last newline.
func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = nil
	}
}

package cli

import (
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// liveWidth bounds a live line, so that it fits one row of most terminals
// and the carriage return rewrites all of it.
const liveWidth = 100

// liveLine shows progress on a terminal as one line that each update
// rewrites; elsewhere (a file, a pipe, a CI log) each update is a line of
// its own, as before.
type liveLine struct {
	w    io.Writer
	tty  bool
	open bool // a rewritable line is on screen, without its newline
}

func newLiveLine(w io.Writer) *liveLine { return &liveLine{w: w, tty: isTerminal(w)} }

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// set shows text as the live line.
func (l *liveLine) set(text string) {
	if !l.tty {
		fmt.Fprintln(l.w, text)
		return
	}
	text = strings.Map(func(r rune) rune {
		if r < ' ' {
			return ' '
		}
		return r
	}, text)
	fmt.Fprintf(l.w, "\r\x1b[K%s", truncate(text, liveWidth))
	l.open = true
}

// done ends the live line, keeping its last text, so that what is written
// next starts on a line of its own.
func (l *liveLine) done() {
	if l.open {
		fmt.Fprintln(l.w)
		l.open = false
	}
}

// byteSize formats n bytes for people.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

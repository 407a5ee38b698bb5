package process

import (
	"bufio"
	"errors"
	"io"
)

// MaxLine is the longest line handed to a Sink; a longer one arrives as
// several lines of at most MaxLine bytes, none of it lost.
const MaxLine = 64 << 10

// ReadLines calls emit with each line of r, without its line ending, until
// r ends or fails; a line longer than MaxLine is split. It returns nil at EOF.
func ReadLines(r io.Reader, emit func(line string)) error {
	br := bufio.NewReaderSize(r, MaxLine)
	inLong := false // the previous piece was the start of a longer line
	for {
		b, isPrefix, err := br.ReadLine()
		// After a split line, an empty piece only ends it: it is no line of its own.
		if len(b) > 0 || (err == nil && !isPrefix && !inLong) {
			emit(string(b))
		}
		if err == nil {
			inLong = isPrefix
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

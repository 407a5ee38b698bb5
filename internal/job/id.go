package job

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
	"time"
)

var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// NewID returns a fresh random id with the given prefix, short enough to fit
// into names with length limits, like a TrainingJobName.
func NewID(prefix string) string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // never fails: crypto/rand panics rather than return an error
	return prefix + strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// NewSortedID returns a fresh id with the given prefix whose text sorts in
// the order ids were made, to the millisecond: six bytes of the Unix time
// in milliseconds, then six random ones. Jobs get such ids, so that the
// rows and index entries of jobs made about the same time, which mostly
// move through their states about the same time too, sit together in a
// database's indexes: a commit of many jobs' events then writes a few
// index pages rather than one per job.
func NewSortedID(prefix string) string {
	var b [12]byte
	ms := uint64(time.Now().UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (8 * (5 - i)))
	}
	_, _ = rand.Read(b[6:])
	return prefix + strings.ToLower(idEncoding.EncodeToString(b[:]))
}

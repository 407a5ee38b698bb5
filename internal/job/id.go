package job

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// NewID returns a fresh random id with the given prefix, short enough to fit
// into names with length limits, like a TrainingJobName.
func NewID(prefix string) string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // never fails: crypto/rand panics rather than return an error
	return prefix + strings.ToLower(idEncoding.EncodeToString(b[:]))
}

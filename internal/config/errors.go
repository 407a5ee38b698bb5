package config

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/slipway-ml/slipway/internal/job"
)

// FieldError is one problem at one place in a config.
type FieldError struct {
	// Path names the key: "builder.destination", "queues[1]",
	// "ResourceConfig.InstanceType", "InputDataConfig[0].ChannelName",
	// "HyperParameters.lr". Empty for the document as a whole.
	Path string `json:"path"`
	// Line is the 1-based line in the YAML source; 0 when unknown (JSON bodies).
	Line int `json:"line,omitempty"`
	// Msg says what is wrong and what was expected.
	Msg string `json:"message"`
}

func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Errors is every problem found in one config, sorted by path. It wraps
// job.ErrInvalid, so errors.Is(err, job.ErrInvalid) holds, and errors.As
// recovers the list for an API answer.
type Errors []FieldError

func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteString("\n")
		}
		if e.Line > 0 {
			fmt.Fprintf(&b, "line %d: ", e.Line)
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap makes errors.Is(err, job.ErrInvalid) true.
func (es Errors) Unwrap() error { return job.ErrInvalid }

// err returns es sorted as an error, or nil when es is empty.
func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	sortErrors(es)
	return es
}

// sortErrors orders errors by path, comparing list indices by value so that
// [2] comes before [10]; errors at one path keep the order they were found.
func sortErrors(es []FieldError) {
	slices.SortStableFunc(es, func(a, b FieldError) int { return comparePaths(a.Path, b.Path) })
}

// comparePaths compares two paths, runs of digits by their numeric value.
func comparePaths(a, b string) int {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := cmp.Compare(len(na), len(nb)); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digitRun(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// joinPath appends a member or key to a path, quoting keys that would not
// read as one path element.
func joinPath(path, key string) string {
	if !plainKey(key) {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func indexPath(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

func plainKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !(r == '_' || r == '-' || r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r))) {
			return false
		}
	}
	return true
}

// suggest returns the candidate closest to s when it is close enough to be
// a likely typo, or "".
func suggest(s string, candidates []string) string {
	norm := func(x string) string {
		return strings.Map(func(r rune) rune {
			if r == '_' || r == '-' {
				return -1
			}
			return unicode.ToLower(r)
		}, x)
	}
	best, bestD := "", -1
	ns := norm(s)
	for _, c := range candidates {
		d := editDistance(ns, norm(c))
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if bestD < 0 || bestD > max(2, len(s)/4) || bestD >= len(ns) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, by bytes; it
// gives up (returns a large value) on inputs too long to be typos.
func editDistance(a, b string) int {
	if len(a) > 256 || len(b) > 256 {
		return 1 << 20
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// didYouMean formats a suggestion suffix, or "" when there is none.
func didYouMean(s string, candidates []string) string {
	if m := suggest(s, candidates); m != "" {
		return " (did you mean " + m + "?)"
	}
	return ""
}

package sqlite

import (
	"fmt"
	"strings"
	"testing"
)

// TestRowsSQLEach checks that a batch's rows go in statements of 1, 2, 4,
// ... maxChunk rows, in order, each whole, the last padded with NULL rows.
func TestRowsSQLEach(t *testing.T) {
	t.Parallel()
	q := newRowsSQL("INSERT INTO t VALUES (?, ?)", "INSERT INTO t VALUES ", 2, "")
	for _, tc := range []struct {
		rows  int
		sizes []int
	}{
		{0, nil},
		{1, []int{1}},
		{3, []int{4}},
		{8, []int{8}},
		{9, []int{16}},
		{32, []int{32}},
		{33, []int{32, 1}},
		{70, []int{32, 32, 8}},
	} {
		var args []any
		for i := range tc.rows * 2 {
			args = append(args, i)
		}
		var sizes []int
		next := 0
		err := q.each(args, func(query string, chunk []any) error {
			size := strings.Count(query, "(")
			if len(chunk) != 2*size {
				return fmt.Errorf("statement of %d rows got %d arguments, want %d", size, len(chunk), 2*size)
			}
			for _, a := range chunk {
				if a == nil {
					continue
				}
				if a != next {
					return fmt.Errorf("got argument %v, want %d: in order, none lost", a, next)
				}
				next++
			}
			sizes = append(sizes, size)
			return nil
		})
		if err != nil {
			t.Fatalf("%d rows: %v", tc.rows, err)
		}
		if fmt.Sprint(sizes) != fmt.Sprint(tc.sizes) || next != len(args) {
			t.Fatalf("%d rows: got statements of %v rows carrying %d values, want %v carrying %d", tc.rows, sizes, next, tc.sizes, len(args))
		}
	}
	if got, want := q.texts[1], "INSERT INTO t VALUES (?, ?), (?, ?)"; got != want {
		t.Fatalf("text for 2 rows: got %q, want %q", got, want)
	}
}

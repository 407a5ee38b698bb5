package sqlite

import (
	"context"
	"database/sql"
	"strings"
)

// A batch's rows go to SQLite as the parameters of multi-row statements
// (VALUES lists, IN lists): one statement for many rows, where each costs
// about as much as the work it does for one, with every value bound as it
// is. A JSON array bound to one parameter would keep one statement text,
// but SQLite's JSON functions cost more than the statements they spare.
//
// So that few texts are prepared, a statement carries 1, 2, 4, ...
// maxChunk rows; the last chunk of a batch is padded with rows of NULLs,
// which match no job and insert nothing. A single row goes in a plain
// statement of its own (WHERE seq = ?, INSERT ... VALUES): SQLite runs
// those with fewer steps than a join with a VALUES list of one row.

// maxChunk is the most rows one statement carries: 32 rows of 7 values
// bind 224 parameters.
const maxChunk = 32

// chunkSizes is how many sizes of statement there are: 1 to maxChunk.
const chunkSizes = 6

// rowsSQL is a statement for 1, 2, 4, ... maxChunk rows of width
// parameters each, by size.
type rowsSQL struct {
	width int
	texts [chunkSizes]string
}

// newRowsSQL returns the statement one for a single row of width
// parameters, and head + rows + tail for more, where rows are n
// comma-separated copies of a row: "(?, ?)" for width 2, "?" for width
// 1 (an IN list).
func newRowsSQL(one, head string, width int, tail string) *rowsSQL {
	row := "?"
	if width > 1 {
		row = "(" + strings.TrimSuffix(strings.Repeat("?, ", width), ", ") + ")"
	}
	q := &rowsSQL{width: width}
	q.texts[0] = one
	for i := 1; i < len(q.texts); i++ {
		q.texts[i] = head + strings.TrimSuffix(strings.Repeat(row+", ", 1<<i), ", ") + tail
	}
	return q
}

// each calls fn with each statement, and its arguments, that carry args,
// q.width values a row, in order.
func (q *rowsSQL) each(args []any, fn func(query string, args []any) error) error {
	for len(args) > 0 {
		n := len(args) / q.width
		i := 0
		for 1<<i < n && i < chunkSizes-1 {
			i++
		}
		k := min(n, 1<<i) * q.width
		chunk := args[:k:k]
		if pad := (1<<i)*q.width - k; pad > 0 {
			chunk = append(chunk, make([]any, pad)...)
		}
		if err := fn(q.texts[i], chunk); err != nil {
			return err
		}
		args = args[k:]
	}
	return nil
}

// query runs the statements of q that carry args and calls fn with each
// job row they return and its seq (the statements return seq, then
// jobColumns).
func (q *rowsSQL) query(ctx context.Context, tx *wtx, args []any, fn func(r row, seq int64)) error {
	return q.each(args, func(query string, args []any) error {
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		return scanSeqRows(rows, fn)
	})
}

// scanSeqRows calls fn with each job row of rows, which select seq then
// jobColumns, and its seq, and closes rows.
func scanSeqRows(rows *sql.Rows, fn func(r row, seq int64)) error {
	defer rows.Close()
	sc := newRowScanner(true)
	for rows.Next() {
		r, err := sc.scan(rows)
		if err != nil {
			return err
		}
		fn(r, sc.seq)
	}
	return rows.Err()
}

// exec runs the statements of q that carry args.
func (q *rowsSQL) exec(ctx context.Context, tx *wtx, args []any) error {
	return q.each(args, func(query string, args []any) error {
		_, err := tx.ExecContext(ctx, query, args...)
		return err
	})
}

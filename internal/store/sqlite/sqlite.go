// Package sqlite is the embedded Store: one SQLite file, written through a
// single connection in WAL mode with synchronous=FULL, so that every write is
// on disk when its method returns, and read through a small pool of read-only
// connections that WAL lets run beside the writer.
//
// It uses modernc.org/sqlite, a pure-Go SQLite, so the binary needs no cgo.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

var _ store.Store = (*Store)(nil)

// Scheme is the optional prefix of a DSN: "sqlite://PATH" and "PATH" name the
// same file.
const Scheme = "sqlite://"

// busyTimeout is how long a connection waits for another process's write
// lock before it gives up with SQLITE_BUSY. Within one process the single
// writer connection already serialises writes.
const busyTimeout = 10 * time.Second

// readers is the size of the read-only pool; reads never block the writer
// in WAL mode, and 2 cores gain little from more.
const readers = 4

// Store is a store.Store on one SQLite file. It is safe for concurrent use.
type Store struct {
	path string
	w    *sql.DB // one connection; every write goes through it, in BEGIN IMMEDIATE transactions
	r    *sql.DB // read-only pool

	writes  chan *writeReq // to the writer goroutine, which owns w
	quit    chan struct{}  // closed by Close
	stopped chan struct{}  // closed when the writer goroutine has returned

	stmtsMu sync.Mutex
	stmts   map[string]*sql.Stmt // prepared on w, by query; nil until prepared

	closeOnce sync.Once
	closeErr  error
}

// Open opens, creating it and its parent directories when missing, the
// database named by dsn, a file path or "sqlite://PATH", and brings its
// schema up to date.
func Open(ctx context.Context, dsn string) (*Store, error) {
	path, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating the directory of %s: %w", path, err)
	}
	s := &Store{path: path}
	if s.w, err = openDB(path, false); err != nil {
		return nil, err
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxIdleTime(0)
	s.w.SetConnMaxLifetime(0)
	// Migrate before the read pool opens: it sets journal_mode=WAL for the
	// file, which readers opened with query_only could not do.
	if err := migrate(ctx, s.w, migrations); err != nil {
		_ = s.w.Close()
		return nil, fmt.Errorf("migrating %s: %w", path, err)
	}
	if s.r, err = openDB(path, true); err != nil {
		_ = s.w.Close()
		return nil, err
	}
	s.r.SetMaxOpenConns(readers)
	s.r.SetMaxIdleConns(readers)
	s.stmts = map[string]*sql.Stmt{}
	s.writes, s.quit, s.stopped = make(chan *writeReq), make(chan struct{}), make(chan struct{})
	go s.writer()
	return s, nil
}

// ParseDSN returns the absolute file path that dsn names: a path, or
// "sqlite://PATH". job.ErrInvalid when it names none.
func ParseDSN(dsn string) (string, error) {
	path := strings.TrimPrefix(dsn, Scheme)
	switch {
	case path == "":
		return "", fmt.Errorf("%w: sqlite dsn %q: want a file path or %sPATH", job.ErrInvalid, dsn, Scheme)
	case path == ":memory:" || strings.HasPrefix(path, "file:"):
		return "", fmt.Errorf("%w: sqlite dsn %q: want a file path, not a SQLite URI or :memory:", job.ErrInvalid, dsn)
	case strings.ContainsAny(path, "?#\x00"):
		// The driver reads everything after '?' as its own parameters.
		return "", fmt.Errorf("%w: sqlite dsn %q: the path may not contain '?', '#' or NUL", job.ErrInvalid, dsn)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("%w: sqlite dsn %q: %v", job.ErrInvalid, dsn, err)
	}
	return abs, nil
}

// openDB opens a pool on path. The pragmas are per connection, so they go in
// the DSN, which the driver applies to every new connection.
func openDB(path string, readOnly bool) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(FULL)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		// Savepoints and multi-row statements keep the pages they change
		// in a journal of their own, to undo them alone: in memory, not a
		// temporary file the writer creates, fills and deletes, which cost
		// it syscalls on every commit of several writes. That journal is
		// not for crash recovery (the WAL is), so nothing durable moves.
		q.Add("_pragma", "temp_store(MEMORY)")
		q.Set("_txlock", "immediate")
	}
	db, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	return db, nil
}

// Close waits for the writes under way, refuses later ones with ErrClosed
// and closes the database; later calls return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.quit)
		<-s.stopped
		s.stmtsMu.Lock()
		var errs []error
		for _, st := range s.stmts {
			if st != nil {
				errs = append(errs, st.Close())
			}
		}
		s.stmts = nil
		s.stmtsMu.Unlock()
		s.closeErr = errors.Join(append(errs, s.r.Close(), s.w.Close())...)
	})
	return s.closeErr
}

// ErrClosed is returned by writes to a closed Store.
var ErrClosed = errors.New("sqlite store closed")

// writeReq is one write, or several that must share a transaction,
// waiting for the writer goroutine.
type writeReq struct {
	ctx  context.Context
	fns  []func(ctx context.Context, tx *wtx) error
	errs []error       // one per fn, set by the writer before it closes done
	done chan struct{} // closed when errs are set
	// moves, when not nil, is the batch of a Transitions, and fns its one
	// fn: the writer runs the move batches of one transaction together
	// (see commit), and that fn only for a batch left to run alone.
	moves *moveReq
	// claim, when not nil, is a ClaimN, and fns its one fn: the writer
	// runs the claims of one queue of a transaction together (see
	// Store.together), and that fn only for a claim left to run alone.
	claim *claimReq
}

// write runs fn in a transaction on the writer connection and returns when
// it is committed, or fn's error when fn failed and was rolled back.
//
// Writes that arrive while another transaction commits are committed
// together (group commit): each runs inside its own SAVEPOINT, so one that
// fails is undone alone, and the batch pays for one fsync. (The move
// batches of Transitions run together, in one, and the claims of one
// queue: see together.) fn gets a context
// that is not canceled, since interrupting a statement would roll back the
// whole batch; a write whose ctx ends before it starts is skipped.
func (s *Store) write(ctx context.Context, fn func(ctx context.Context, tx *wtx) error) error {
	return s.writeEach(ctx, fn)[0]
}

// writeEach is write for several fns that go to the writer together, so
// that they share one transaction and its commit: each still runs in its
// own savepoint and gets its own error, at its index.
func (s *Store) writeEach(ctx context.Context, fns ...func(ctx context.Context, tx *wtx) error) []error {
	return s.send(&writeReq{ctx: ctx, fns: fns, errs: make([]error, len(fns)), done: make(chan struct{})})
}

// send hands req to the writer and returns its errors once it ran.
func (s *Store) send(req *writeReq) []error {
	ctx := req.ctx
	fail := func(err error) []error {
		for i := range req.errs {
			req.errs[i] = err
		}
		return req.errs
	}
	select {
	case s.writes <- req:
	case <-s.quit:
		return fail(ErrClosed)
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	// Once taken, a write always gets an answer: waiting for it, rather than
	// for ctx, tells the caller truly whether it was committed.
	<-req.done
	return req.errs
}

// maxBatch bounds how many writes share one transaction; a writeEach of
// more fns still goes in one.
const maxBatch = 128

// writer owns the writer connection: it takes the writes waiting, runs
// them in one transaction and answers each.
func (s *Store) writer() {
	defer close(s.stopped)
	batch := make([]*writeReq, 0, maxBatch)
	for {
		select {
		case req := <-s.writes:
			batch = append(batch[:0], req)
		case <-s.quit:
			return
		}
		n := len(batch[0].fns)
		// Let the goroutines that are ready to send a write run first, so
		// that their writes share this commit rather than wait for the
		// next: a commit costs a WAL sync and its pages whatever it holds.
		runtime.Gosched()
	more:
		for n < maxBatch {
			select {
			case req := <-s.writes:
				batch = append(batch, req)
				n += len(req.fns)
			default:
				break more
			}
		}
		s.commit(batch, n)
		for i, req := range batch {
			close(req.done)
			batch[i] = nil
		}
		s.prepare(context.Background())
	}
}

// commit runs batch, n fns in all, in one transaction and sets each fn's
// result. The move batches and the claims of one queue run together first
// (see together), without a savepoint each: when the database refuses any
// of that, which it should never do, the transaction is rolled back and
// runs again with every write alone, so that only the refused one fails.
func (s *Store) commit(batch []*writeReq, n int) {
	if s.commitOnce(batch, n, true) {
		for _, req := range batch {
			if req.claim != nil {
				req.claim.rows = nil
			}
		}
		s.commitOnce(batch, n, false)
	}
}

// commitOnce is commit's transaction, with the writes run together when
// merge is set; it reports whether the database refused those, and
// nothing was written.
func (s *Store) commitOnce(batch []*writeReq, n int, merge bool) (refused bool) {
	ctx := context.Background()
	fail := func(err error) {
		for _, req := range batch {
			for i := range req.errs {
				req.errs[i] = err
			}
		}
	}
	sqltx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		fail(fmt.Errorf("beginning a transaction: %w", err))
		return false
	}
	tx := &wtx{Tx: sqltx, s: s}
	ok := 0
	if merge {
		if ok, err = s.together(ctx, tx, batch); err != nil {
			_ = tx.Rollback()
			return true
		}
	}
	for _, req := range batch {
		if req.moves != nil && req.moves.ran || req.claim != nil && req.claim.ran {
			continue
		}
		if err := req.ctx.Err(); err != nil {
			for i := range req.errs {
				req.errs[i] = err
			}
			continue
		}
		fnCtx := context.WithoutCancel(req.ctx)
		for i, fn := range req.fns {
			if n == 1 {
				// Alone in its transaction, a write needs no savepoint.
				if req.errs[i] = fn(fnCtx, tx); req.errs[i] != nil {
					_ = tx.Rollback()
					return false
				}
				ok++
				continue
			}
			if _, err := tx.ExecContext(ctx, `SAVEPOINT w`); err != nil {
				_ = tx.Rollback()
				fail(fmt.Errorf("opening a savepoint: %w", err))
				return false
			}
			err := fn(fnCtx, tx)
			if err != nil {
				if _, rerr := tx.ExecContext(ctx, `ROLLBACK TO w`); rerr != nil {
					_ = tx.Rollback()
					fail(fmt.Errorf("rolling back a failed write (%v): %w", err, rerr))
					return false
				}
			} else {
				ok++
			}
			if _, rerr := tx.ExecContext(ctx, `RELEASE w`); rerr != nil {
				_ = tx.Rollback()
				fail(fmt.Errorf("releasing a savepoint: %w", rerr))
				return false
			}
			req.errs[i] = err
		}
	}
	if ok == 0 {
		_ = tx.Rollback()
		return false
	}
	if err := tx.Commit(); err != nil {
		fail(fmt.Errorf("committing: %w", err))
	}
	return false
}

// together runs, first in a transaction, the move batches of its writes
// as one batch (moveRows) when there are two or more, and the claims of
// one queue together (claimAll) when there are two or more, then records
// the events of all in one statement (moves' first): the agents' many
// small reports and claims cost a few statements for them all. It marks
// the requests it answered as ran, and returns how many succeeded (a
// claim that took no job gets job.ErrNoJob). On an error, nothing is
// answered and the transaction must be rolled back.
func (s *Store) together(ctx context.Context, tx *wtx, batch []*writeReq) (int, error) {
	var movers, claims []*writeReq
	n := 0
	for _, req := range batch {
		switch {
		case req.ctx.Err() != nil:
		case req.moves != nil:
			movers = append(movers, req)
			n += len(req.moves.us)
		case req.claim != nil && len(req.claim.req.Queues) == 1:
			claims = append(claims, req)
		}
	}
	if len(movers) < 2 {
		movers = nil
	}
	if len(claims) < 2 {
		claims = nil
	}
	var (
		res    moveResult
		events []any
		err    error
	)
	if movers != nil {
		us := make([]store.Update, 0, n)
		for _, req := range movers {
			us = append(us, req.moves.us...)
		}
		if res, events, err = moveRows(ctx, tx, us); err != nil {
			return 0, err
		}
	}
	if claims != nil {
		ev, err := claimAll(ctx, tx, claims)
		if err != nil {
			return 0, err
		}
		events = append(events, ev...)
	}
	if err := eventsSQL.exec(ctx, tx, events); err != nil {
		return 0, fmt.Errorf("recording events: %w", err)
	}
	ok, off := 0, 0
	for _, req := range movers {
		k := len(req.moves.us)
		req.moves.res = moveResult{steps: res.steps[off : off+k], errs: res.errs[off : off+k], specs: res.specs}
		req.moves.ran = true
		off += k
		ok++
	}
	for _, req := range claims {
		req.claim.ran = true
		if len(req.claim.rows) == 0 {
			req.errs[0] = job.ErrNoJob
			continue
		}
		ok++
	}
	return ok, nil
}

// wtx is a write transaction whose statements are prepared once per Store:
// parsing SQL costs about as much as running it, and every write runs the
// same few statements.
type wtx struct {
	*sql.Tx
	s     *Store
	bound map[string]*sql.Stmt // the Store's statements bound to this transaction, by query
}

// stmt returns query's statement bound to tx, or nil when it is not
// prepared yet (see Store.stmt). A transaction binds each statement once,
// however many of its writes run it.
func (tx *wtx) stmt(ctx context.Context, query string) *sql.Stmt {
	if st, ok := tx.bound[query]; ok {
		return st
	}
	st := tx.s.stmt(query)
	if st == nil {
		return nil
	}
	if tx.bound == nil {
		tx.bound = map[string]*sql.Stmt{}
	}
	b := tx.StmtContext(ctx, st)
	tx.bound[query] = b
	return b
}

// stmt returns query prepared on the writer connection, or nil when it is
// not yet: the one connection is busy with the transaction then, so the
// query runs unprepared this time and is prepared after the commit.
func (s *Store) stmt(query string) *sql.Stmt {
	s.stmtsMu.Lock()
	defer s.stmtsMu.Unlock()
	st, ok := s.stmts[query]
	if !ok {
		s.stmts[query] = nil
	}
	return st
}

// prepare prepares the queries that stmt saw for the first time. The writer
// goroutine calls it between transactions, when the connection is free.
func (s *Store) prepare(ctx context.Context) {
	s.stmtsMu.Lock()
	defer s.stmtsMu.Unlock()
	for q, st := range s.stmts {
		if st != nil {
			continue
		}
		st, err := s.w.PrepareContext(ctx, q)
		if err != nil {
			delete(s.stmts, q) // it will fail again where it runs, and say why there
			continue
		}
		s.stmts[q] = st
	}
}

func (tx *wtx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := tx.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return tx.Tx.ExecContext(ctx, query, args...)
}

func (tx *wtx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := tx.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return tx.Tx.QueryContext(ctx, query, args...)
}

func (tx *wtx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := tx.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return tx.Tx.QueryRowContext(ctx, query, args...)
}

// mustAffect returns job.ErrNotFound when res changed no row.
func mustAffect(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return job.ErrNotFound
	}
	return nil
}

// now is the store's clock, cut to the precision the database keeps so
// that what a write returns equals what a later read returns.
func now() time.Time { return fromDB(toDB(time.Now())) }

// toDB is the stored form of a time: microseconds since the Unix epoch, as
// precise as PostgreSQL's timestamptz.
func toDB(t time.Time) int64 { return t.UnixMicro() }

func fromDB(us int64) time.Time { return time.UnixMicro(us).UTC() }

// isUnique reports whether err is a violated UNIQUE or PRIMARY KEY constraint.
func isUnique(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

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
		q.Set("_txlock", "immediate")
	}
	db, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	return db, nil
}

// Close closes the database; later calls return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = errors.Join(s.r.Close(), s.w.Close())
	})
	return s.closeErr
}

// write runs fn in one BEGIN IMMEDIATE transaction on the writer connection
// and commits it when fn returns nil.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning a transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing: %w", err)
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

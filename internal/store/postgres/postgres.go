// Package postgres is the Store for many machines: one PostgreSQL database
// that a server, or several, share through a pgx connection pool.
//
// Claims take the next job with FOR UPDATE SKIP LOCKED in one statement, so
// concurrent claimers never wait on each other's rows nor take one job twice.
// The schema lives in the connection's current schema (the first of its
// search_path that exists), so one database can hold several stores.
//
// A lost connection is not an error the caller sees while the server comes
// back within a few seconds: pgxpool opens new connections, and a statement
// that failed because its connection was lost is run again, when running it
// again cannot apply it twice.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

var _ store.Store = (*Store)(nil)

// Schemes are the DSN prefixes that name a PostgreSQL database; a DSN in
// key=value form is accepted too.
var Schemes = []string{"postgres://", "postgresql://"}

// IsDSN reports whether dsn names a PostgreSQL database by URL.
func IsDSN(dsn string) bool {
	for _, s := range Schemes {
		if strings.HasPrefix(dsn, s) {
			return true
		}
	}
	return false
}

// Retry bounds: a statement is tried at most maxTries times, and waits for
// the server at most retryFor in all, then its error is returned.
const (
	maxTries  = 6
	retryFor  = 30 * time.Second
	firstWait = 50 * time.Millisecond
	maxWait   = 2 * time.Second
)

// Store is a store.Store on a PostgreSQL database. It is safe for
// concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects to the database named by dsn, a postgres:// URL or a
// key=value connection string that pgx accepts, and brings the schema of
// its current schema up to date.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx blanks the password out of the DSN it quotes.
		return nil, fmt.Errorf("%w: postgres dsn: %v", job.ErrInvalid, err)
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "slipway"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to postgres: %w", err)
	}
	s := &Store{pool: pool}
	if err := s.retry(ctx, true, func(ctx context.Context) error { return migrate(ctx, pool, migrations) }); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrating the postgres schema: %w", err)
	}
	return s, nil
}

// Close closes every connection; later calls do nothing.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// now is the store's clock, cut to the microseconds that timestamptz keeps,
// so that what a write returns equals what a later read returns.
func now() time.Time { return toDB(time.Now()) }

// toDB cuts t to what timestamptz keeps; PostgreSQL would round instead.
func toDB(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// clean makes s storable as text, which PostgreSQL keeps in UTF-8 without
// NUL: training jobs print anything, and what they print reaches logs and
// reasons. Each run of bad bytes, and each NUL, becomes U+FFFD.
func clean(s string) string {
	if utf8.ValidString(s) && !strings.Contains(s, "\x00") {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// cleanMap is clean for every key and value of m.
func cleanMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[clean(k)] = clean(v)
	}
	return out
}

// querier is what a pool, a connection and a transaction share.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// retry runs fn until it succeeds, fails for a reason other than a lost
// connection, or the bounds are reached. A lost connection is retried when
// fn surely did not apply (the server said so, or nothing reached it), and
// otherwise only when idempotent says that applying it twice is harmless.
func (s *Store) retry(ctx context.Context, idempotent bool, fn func(ctx context.Context) error) error {
	deadline := time.Now().Add(retryFor)
	wait := firstWait
	for try := 1; ; try++ {
		err := fn(ctx)
		if strings.HasPrefix(pgCode(err), "22") { // data_exception: a value the column cannot hold
			return fmt.Errorf("%w: %w", job.ErrInvalid, err)
		}
		if err == nil || ctx.Err() != nil || try == maxTries || time.Now().After(deadline) {
			return err
		}
		if !notApplied(err) && !(idempotent && connLost(err)) {
			return err
		}
		// Wait for the server before trying again; the pool replaces the
		// connections it finds broken.
		for {
			if werr := sleep(ctx, wait); werr != nil {
				return err
			}
			wait = min(2*wait, maxWait)
			pctx, cancel := context.WithDeadline(ctx, deadline)
			perr := s.pool.Ping(pctx)
			cancel()
			if perr == nil {
				break
			}
			if ctx.Err() != nil || time.Now().After(deadline) {
				return err
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// notApplied reports whether err surely means that the statement did not
// take effect: pgx sent nothing, or the server ended the session or refused
// the connection before committing it.
func notApplied(err error) bool {
	// The server's word first: a refused login or a missing database,
	// say, will not go away by trying again.
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "57P01", "57P02", "57P03": // admin_shutdown, crash_shutdown, cannot_connect_now
			return true
		}
		return strings.HasPrefix(pe.Code, "08") // connection_exception
	}
	if pgconn.SafeToRetry(err) {
		return true
	}
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) // the server could not be reached

}

// connLost reports whether err is a connection lost, whether or not the
// statement took effect before it was.
func connLost(err error) bool {
	if notApplied(err) {
		return true
	}
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed) || (errors.As(err, &ne) && !ne.Timeout())
}

// commitError is a failed COMMIT: whether it took effect is unknown unless
// the error says so.
type commitError struct{ err error }

func (e *commitError) Error() string { return "committing: " + e.err.Error() }
func (e *commitError) Unwrap() error { return e.err }

// inTx runs fn in a transaction, and runs it all again when the connection
// was lost before COMMIT, which leaves nothing applied.
func (s *Store) inTx(ctx context.Context, fn func(ctx context.Context, tx pgx.Tx) error) error {
	return s.txWith(ctx, pgx.TxOptions{}, fn)
}

func (s *Store) txWith(ctx context.Context, opts pgx.TxOptions, fn func(ctx context.Context, tx pgx.Tx) error) error {
	return s.retry(ctx, false, func(ctx context.Context) error {
		tx, err := s.pool.BeginTx(ctx, opts)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
		if err := fn(ctx, tx); err != nil {
			if connLost(err) {
				// Nothing was committed: running it all again is safe.
				return &retryable{err}
			}
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return &commitError{err}
		}
		return nil
	})
}

// retryable marks an error as safe to retry.
type retryable struct{ err error }

func (e *retryable) Error() string     { return e.err.Error() }
func (e *retryable) Unwrap() error     { return e.err }
func (e *retryable) SafeToRetry() bool { return true }

// pgCode returns the SQLSTATE of err, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

const (
	uniqueViolation     = "23505"
	foreignKeyViolation = "23503"
)

// scanner is a row to scan: pgx.Row or pgx.Rows.
type scanner interface{ Scan(dest ...any) error }

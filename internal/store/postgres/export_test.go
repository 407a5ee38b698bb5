package postgres

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// SchemaVersion is the version every opened schema is at.
func SchemaVersion() int { return len(migrations) }

// ClaimSQL is Claim's statement, for explaining its plan.
const ClaimSQL = claimSQL

// MigrateTo applies the first n migrations to dsn's schema, as an older
// Slipway left it.
func MigrateTo(ctx context.Context, dsn string, n int) error {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return err
	}
	defer pool.Close()
	return migrate(ctx, pool, migrations[:n])
}

package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/slipway-ml/slipway/internal/store/sqlite"
	"github.com/slipway-ml/slipway/internal/store/storetest"
)

// TestTransitionsOneFailsInTheDatabase has SQLite refuse one update of a
// batch (a trigger aborts on its reason) and checks that it is undone alone.
func TestTransitionsOneFailsInTheDatabase(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "batch.db")
	s := open(t, path)
	t.Cleanup(func() { _ = s.Close() })
	storetest.RefusedByDatabase(t, s, func(t *testing.T) {
		exec := sqlite.OpenOld(t, path, sqlite.SchemaVersion())
		// It fires on the event of the move, after the job's row was
		// updated: undoing the move needs its savepoint.
		exec(`CREATE TRIGGER refuse_boom BEFORE INSERT ON events WHEN NEW.reason = 'boom'
			BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`)
	})
}

package postgres_test

import (
	"testing"

	"github.com/slipway-ml/slipway/internal/store/storetest"
)

// TestTransitionsOneFailsInTheDatabase has PostgreSQL refuse one update of
// a batch (a trigger raises on its reason) and checks that it fails alone.
func TestTransitionsOneFailsInTheDatabase(t *testing.T) {
	t.Parallel()
	dsn := schema(t, "batchfail")
	s := open(t, dsn)
	storetest.RefusedByDatabase(t, s, func(t *testing.T) {
		conn := connect(t, dsn)
		if _, err := conn.Exec(t.Context(), `CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN IF NEW.reason = 'boom' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$;
			CREATE TRIGGER refuse_boom BEFORE UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION refuse_boom()`); err != nil {
			t.Fatalf("creating the trigger: %v", err)
		}
	})
}

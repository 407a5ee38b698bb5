package baseimage

import (
	"path/filepath"
	"testing"
	"time"
)

// TestLockFileExcludesOtherHolders: a second holder of the lock (a lock
// taken through its own open file, as another process takes it) gets it only
// once the first has released it.
func TestLockFileExcludesOtherHolders(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "lock")
	unlock, err := lockFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func())
	go func() {
		second, err := lockFile(path)
		if err != nil {
			t.Error(err)
			second = func() {}
		}
		got <- second
	}()
	select {
	case second := <-got:
		second()
		t.Fatal("a second holder took the lock while the first held it")
	case <-time.After(100 * time.Millisecond):
	}
	unlock()
	(<-got)()
}

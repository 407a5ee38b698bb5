package statefile_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/slipway-ml/slipway/internal/localaws/statefile"
)

func TestSaveThenLoadOwnerOnly(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "svc", "state.json")
	want := map[string]string{"a": "1", "b": "2"}
	if err := statefile.Save(path, want); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if err := statefile.Save(path, map[string]string{"a": "3"}); err != nil {
		t.Fatalf("Save again: %v", err)
	}
	got := map[string]string{}
	if err := statefile.Load(path, &got); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(got) != 1 || got["a"] != "3" {
		t.Errorf("Load: got %v, want the last state {a: 3}", got)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s: got mode %o, want %o", p, st.Mode().Perm(), want)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("folder holds %d entries, want only the state file (no temporary files left)", len(entries))
	}
}

func TestLoadMissingKeepsTheValueAndBadJSONFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	got := map[string]string{"kept": "yes"}
	if err := statefile.Load(filepath.Join(dir, "none.json"), &got); err != nil || got["kept"] != "yes" {
		t.Errorf("Load of a missing file: got %v, %v, want nil and the value untouched", got, err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := statefile.Load(bad, &got); err == nil {
		t.Errorf("Load of a truncated file: got nil, want an error")
	}
}

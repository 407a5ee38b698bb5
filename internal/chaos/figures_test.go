package chaos

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFigures keeps a round's figures in .cache/chaos/<test>.txt at the
// root of the module, so that they can be read after `go test ./...`,
// which shows a passing test's output only under -v. A failure to write
// is logged, never failed: the figures are a report, not a check.
func writeFigures(t *testing.T, text string) {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Logf("not keeping the figures: %v", err)
		return
	}
	dir := filepath.Join(root, ".cache", "chaos")
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + ".txt"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("not keeping the figures: %v", err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
		t.Logf("not keeping the figures: %v", err)
	}
}

// moduleRoot is the nearest folder at or above the working directory (the
// package's, under go test) that holds go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}

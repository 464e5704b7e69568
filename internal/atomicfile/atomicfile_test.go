package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// names returns the entries of dir.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestCommitReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Create(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("new"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Fatalf("before Commit the path holds %q, want the old content", b)
	}
	if filepath.Dir(f.Name()) != dir || filepath.Base(f.Name())[:9] != ".out.tmp-" {
		t.Errorf("temporary file %s, want .out.tmp-* beside the path", f.Name())
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	f.Abort() // does nothing after Commit
	if b, _ := os.ReadFile(path); string(b) != "new" {
		t.Fatalf("after Commit the path holds %q, want %q", b, "new")
	}
	if n := names(t, dir); len(n) != 1 {
		t.Errorf("directory holds %v, want only the output", n)
	}
	if err := f.Commit(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("second Commit = %v, want os.ErrClosed", err)
	}
}

func TestAbortLeavesPath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	f, err := Create(path, ".x-*.tmp")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("partial")
	f.Abort()
	if n := names(t, dir); len(n) != 0 {
		t.Errorf("after Abort the directory holds %v, want nothing", n)
	}
}

func TestCommitFailsCleanly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	f, err := Create(path, "")
	if err != nil {
		t.Fatal(err)
	}
	// A directory that is not empty cannot be replaced by a file: the rename fails.
	if err := os.MkdirAll(filepath.Join(path, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err == nil {
		t.Fatal("Commit over a non-empty directory succeeded")
	}
	if n := names(t, dir); len(n) != 1 || n[0] != "out" {
		t.Errorf("after a failed Commit the directory holds %v, want only the old out", n)
	}
}

func TestRenameKeepsOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	tmp, err := os.CreateTemp(dir, ".t-*")
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Close()
	tmp.WriteString("data")
	if err := Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	if _, err := tmp.ReadAt(b, 0); err != nil || string(b) != "data" {
		t.Fatalf("reading the renamed file: %q, %v", b, err)
	}
	if got, _ := os.ReadFile(path); string(got) != "data" {
		t.Fatalf("path holds %q", got)
	}
	if err := SyncDir(filepath.Join(dir, "missing")); err == nil {
		t.Error("SyncDir of a missing directory succeeded")
	}
}

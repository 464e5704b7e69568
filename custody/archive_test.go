package custody

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestHashFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "img.tar")
	data := []byte(strings.Repeat("layer bytes ", 100000))
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	before := statOf(t, p)
	cache := t.TempDir()
	a, cached, err := Identify(context.Background(), p, SumOptions{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	if cached || a.SHA256 != hex.EncodeToString(want[:]) || a.Kind != "file" || a.Path != p {
		t.Fatalf("got %+v cached=%v", a, cached)
	}
	if !strings.Contains(a.Identity, "ino=") || !strings.Contains(a.Identity, "ctime=") {
		t.Fatalf("identity %q", a.Identity)
	}
	again, cached, err := Identify(context.Background(), p, SumOptions{CacheDir: cache})
	if err != nil || !cached || again != a {
		t.Fatalf("second identify: %+v cached=%v err=%v", again, cached, err)
	}
	if after := statOf(t, p); after != before {
		t.Fatalf("times changed by hashing: %v -> %v", before, after)
	}
	// A changed file (same size) is hashed again: its identity changed.
	data[0] = 'L'
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	third, cached, err := Identify(context.Background(), p, SumOptions{CacheDir: cache})
	want = sha256.Sum256(data)
	if err != nil || cached || third.SHA256 != hex.EncodeToString(want[:]) {
		t.Fatalf("after a change: %+v cached=%v err=%v", third, cached, err)
	}
}

// times is what a test compares of a file's stat.
type times struct{ atime, mtime, ctime unix.Timespec }

func statOf(t *testing.T, p string) times {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return times{st.Atim, st.Mtim, st.Ctim}
}

func TestHashDirMatchesSha256sum(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"oci-layout":          `{"imageLayoutVersion":"1.0.0"}`,
		"index.json":          `{}`,
		"blobs/sha256/aaaa":   "one",
		"blobs/sha256/bbbb":   "two",
		"blobs/sha256-x/cccc": "three", // "sha256-x" sorts before "sha256/" bytewise on whole paths
		"blobs/a b":           "space",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("sha256/aaaa", filepath.Join(dir, "blobs", "link")); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, p := range []string{dir, filepath.Join(dir, "blobs"), filepath.Join(dir, "blobs/sha256/aaaa")} {
		os.Chtimes(p, old, old)
	}
	before := []times{statOf(t, dir), statOf(t, filepath.Join(dir, "blobs")), statOf(t, filepath.Join(dir, "blobs/sha256/aaaa"))}
	a, err := Hash(context.Background(), dir, SumOptions{})
	if err != nil {
		t.Fatal(err)
	}
	after := []times{statOf(t, dir), statOf(t, filepath.Join(dir, "blobs")), statOf(t, filepath.Join(dir, "blobs/sha256/aaaa"))}
	for i := range before {
		if before[i] != after[i] {
			t.Errorf("hashing changed the times of entry %d: %v -> %v", i, before[i], after[i])
		}
	}
	cmd := exec.Command("sh", "-c", "find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(string(out))[0]
	if a.SHA256 != want || a.Kind != "directory" || a.Files != len(files) || a.Skipped != 1 {
		t.Fatalf("got %+v, sha256sum listing gives %s", a, want)
	}
	// Adding a file changes the identity, so a remembered sum is not used.
	cache := t.TempDir()
	if _, err := Hash(context.Background(), dir, SumOptions{CacheDir: cache}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "blobs/sha256/dddd"), []byte("four"), 0o644)
	b, cached, err := Identify(context.Background(), dir, SumOptions{CacheDir: cache})
	if err != nil || cached || b.SHA256 == a.SHA256 || b.Identity == a.Identity {
		t.Fatalf("after adding a file: %+v cached=%v err=%v", b, cached, err)
	}
}

func TestSumLineEscapes(t *testing.T) {
	if got := string(sumLine("ab", "./a\\b\nc")); got != "\\ab  ./a\\\\b\\nc\n" {
		t.Fatalf("%q", got)
	}
}

func TestIdentifyRefuses(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := Identify(context.Background(), filepath.Join(dir, "missing"), SumOptions{}); err == nil {
		t.Error("identified a missing archive")
	}
	fifo := filepath.Join(dir, "fifo")
	unix.Mkfifo(fifo, 0o644)
	if _, _, err := Identify(context.Background(), fifo, SumOptions{}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("fifo: %v", err)
	}
}

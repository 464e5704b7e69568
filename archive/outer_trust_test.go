package archive

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestOuterKeyFileChanged: a compressed archive rewritten in place with the same size, head and tail
// gets another key, so its cached decompressed stream is not used for the new bytes.
func TestOuterKeyFileChanged(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a.tar.gz")
	data := make([]byte, 3*outerKeySpan)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	key := func() string {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		k, err := outerKey(f, int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		return string(k)
	}
	k1 := key()
	if k := key(); k != k1 {
		t.Fatalf("key of an unchanged file changed: %s, %s", k1, k)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("changed"), int64(len(data)/2))
	f.Close()
	later := time.Now().Add(time.Second) // a later edit, not one in the same clock tick
	os.Chtimes(path, later, later)
	if k := key(); k == k1 {
		t.Errorf("a file changed in the middle kept its key %s", k)
	}
}

package index

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/imgfs/imgfs/internal/tartest"
)

// TestReadAfterArchiveChanged: once the archive a layer was opened from is written to in place (same
// size, mtime set back) or truncated, reads fail (ErrSourceChanged, or a short read) instead of
// returning its new bytes; deleted, it still reads its bytes, which the open file keeps.
func TestReadAfterArchiveChanged(t *testing.T) {
	t.Parallel()
	data, _ := trustTars(t)
	want := bytes.Repeat([]byte{'a' + 3}, 9000+3*37)
	for _, how := range []string{"written", "truncated", "deleted"} {
		for name, blob := range map[string][]byte{"plain": data, "gzip": tartest.Gzip(t, data)} {
			t.Run(how+"/"+name, func(t *testing.T) {
				b := fileBlob(t, blob, 0)
				l, err := Open(context.Background(), b, Options{CacheDir: t.TempDir()})
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				id := lookupPath(t, l.Table, "alpha/file-03")
				read := func() ([]byte, error) {
					p := make([]byte, len(want))
					n, err := l.ReadAt(id, p, 0)
					return p[:n], err
				}
				if got, err := read(); err != nil || !bytes.Equal(got, want) {
					t.Fatalf("before: %d bytes, %v", len(got), err)
				}
				path := b.File.Name()
				fi, _ := os.Stat(path)
				time.Sleep(10 * time.Millisecond) // past the coarse clock tick of the file's ctime
				switch how {
				case "written":
					f, err := os.OpenFile(path, os.O_WRONLY, 0)
					if err != nil {
						t.Fatal(err)
					}
					f.WriteAt(bytes.Repeat([]byte{'Z'}, len(blob)/2), int64(len(blob)/4))
					f.Close()
					os.Chtimes(path, fi.ModTime(), fi.ModTime()) // a writer setting the mtime back
				case "truncated":
					os.Truncate(path, int64(len(blob))/2)
				case "deleted":
					os.Remove(path)
				}
				got, err := read()
				if how == "deleted" {
					if err != nil || !bytes.Equal(got, want) {
						t.Errorf("after the archive was deleted: %d bytes, %v", len(got), err)
					}
					return
				}
				// A short read or a decoding error may come first; no read may succeed.
				if err == nil || name == "plain" && how == "written" && !errors.Is(err, ErrSourceChanged) {
					t.Errorf("after the archive was %s: %d bytes, %v; want ErrSourceChanged", how, len(got), err)
				}
			})
		}
	}
}

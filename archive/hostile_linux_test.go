package archive

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestHostileFIFO(t *testing.T) {
	t.Parallel()
	// A FIFO in place of a blob or of the archive must be refused, not block the open.
	l := threeLayers(t, "")
	o := newOCI()
	o.finish(t, o.image(t, linuxAMD64, l))
	dir := o.writeDir(t)
	blob := filepath.Join(dir, filepath.FromSlash(blobPath(l[0].digest)))
	if err := os.Remove(blob); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(blob, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	fifo := filepath.Join(t.TempDir(), "archive.tar")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	runHostile(t, []hostileCase{
		{"fifo blob", dir, ErrInvalid, "not a regular file", false},
		{"fifo archive", fifo, ErrFormat, "not a regular file", true},
	})
}

package archive

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestOpenLeavesAtime reads every blob of an archive (a tar and a layout directory) whose files' atimes
// are two days old: with relatime the kernel would update them, with O_NOATIME it does not.
func TestOpenLeavesAtime(t *testing.T) {
	o := newOCI()
	o.finish(t, o.image(t, linuxAMD64, threeLayers(t, "")))
	tarPath := writeTemp(t, "oci.tar", o.tarBytes(t, tarOpts{}))
	dir := o.writeDir(t)
	old := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	atime := func(p string) time.Time {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		return time.Unix(st.Atim.Sec, st.Atim.Nsec)
	}
	var files []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	files = append(files, tarPath)
	for _, p := range files {
		if err := os.Chtimes(p, old, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	for _, path := range []string{tarPath, dir} {
		a, err := Open(context.Background(), path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		img, err := a.Image(context.Background(), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range img.Layers {
			b, _ := l.Blob()
			if _, err := io.Copy(io.Discard, io.NewSectionReader(b.R, b.Off, b.Size)); err != nil {
				t.Fatal(err)
			}
		}
		a.Close()
	}
	for _, p := range files {
		if got := atime(p); !got.Equal(old) {
			t.Errorf("%s: atime %v, was %v", p, got, old)
		}
	}
}

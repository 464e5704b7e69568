package archive

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestOpenKeepsAtime reads an image's every blob, from an OCI layout and from a tar, and checks that
// the archive's files keep their atimes (set into the past, so that relatime would update them).
func TestOpenKeepsAtime(t *testing.T) {
	o := newOCI()
	o.finish(t, named(o.image(t, linuxAMD64, threeLayers(t, "gzip")), "latest", ""))
	dir := o.writeDir(t)
	tarPath := writeTemp(t, "oci.tar", o.tarBytes(t, tarOpts{}))
	for _, path := range []string{dir, tarPath} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			var files []string
			filepath.Walk(path, func(p string, fi os.FileInfo, err error) error {
				if err == nil && fi.Mode().IsRegular() {
					files = append(files, p)
				}
				return nil
			})
			old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
			for _, p := range files {
				if err := os.Chtimes(p, old, old); err != nil {
					t.Fatal(err)
				}
			}
			a, err := Open(context.Background(), path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			img, err := a.Image(context.Background(), "", &linuxAMD64)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range img.Layers {
				b, err := l.Blob()
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, io.NewSectionReader(b.R, b.Off, b.Size)); err != nil {
					t.Fatal(err)
				}
			}
			for _, p := range files {
				var st unix.Stat_t
				if err := unix.Stat(p, &st); err != nil {
					t.Fatal(err)
				}
				if st.Atim.Sec != old.Unix() {
					t.Errorf("%s: atime changed to %v by reading it", p, time.Unix(st.Atim.Sec, st.Atim.Nsec))
				}
			}
		})
	}
}

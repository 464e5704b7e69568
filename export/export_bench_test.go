package export

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgfs/imgfs/internal/tartest"
	"github.com/imgfs/imgfs/overlay"
)

const benchFileSize = 256 << 20

// benchLayerTar writes an uncompressed layer tar holding one file of size bytes and returns its path and
// the offset of the file's data.
func benchLayerTar(b *testing.B, size int64) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "layer.tar")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	if err := tw.WriteHeader(&tar.Header{Name: "big", Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i*7 + i>>11)
	}
	for left := size; left > 0; left -= int64(len(chunk)) {
		if _, err := tw.Write(chunk[:min(left, int64(len(chunk)))]); err != nil {
			b.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

// benchSinks are the destinations the export benchmark writes to: /dev/null, and a pipe drained by
// another goroutine in 1 MiB reads (as `imgfs export | tar -x` would be).
func benchSinks(b *testing.B) map[string]func() (io.Writer, func()) {
	return map[string]func() (io.Writer, func()){
		"devnull": func() (io.Writer, func()) {
			f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			if err != nil {
				b.Fatal(err)
			}
			return f, func() { f.Close() }
		},
		"pipe": func() (io.Writer, func()) {
			r, w, err := os.Pipe()
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan struct{})
			go func() {
				buf := make([]byte, 1<<20)
				for {
					if _, err := r.Read(buf); err != nil {
						break
					}
				}
				close(done)
			}()
			return w, func() { w.Close(); <-done; r.Close() }
		},
	}
}

// BenchmarkExport exports a view of one 256 MiB file of an uncompressed, file-backed layer (the page
// cache holds it), against io.Copy of the layer file itself to the same destination.
func BenchmarkExport(b *testing.B) {
	path := benchLayerTar(b, benchFileSize)
	l := openIndexLayer(b, path, b.TempDir())
	v, err := overlay.New([]overlay.Layer{l}, overlay.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for name, sink := range benchSinks(b) {
		b.Run("export/"+name, func(b *testing.B) {
			b.SetBytes(benchFileSize)
			b.ReportAllocs()
			for b.Loop() {
				w, done := sink()
				if _, err := Write(context.Background(), v, w, Options{}); err != nil {
					b.Fatal(err)
				}
				done()
			}
		})
		b.Run("io.Copy/"+name, func(b *testing.B) {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			b.SetBytes(benchFileSize)
			b.ReportAllocs()
			for b.Loop() {
				w, done := sink()
				if _, err := f.Seek(0, io.SeekStart); err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(w, f); err != nil {
					b.Fatal(err)
				}
				done()
			}
		})
	}
}

// BenchmarkExportSmallFiles exports 10,000 files of 1 KiB in 100 directories, in memory: the cost per
// member of walking the view and formatting headers.
func BenchmarkExportSmallFiles(b *testing.B) {
	var ms []tartest.Member
	body := strings.Repeat("x", 1024)
	for i := range 10000 {
		ms = append(ms, tartest.File(fmt.Sprintf("dir%03d/file%05d", i%100, i), body))
	}
	v, err := overlay.New([]overlay.Layer{newFakeLayer(ms...)}, overlay.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var st Stats
	b.ReportAllocs()
	for b.Loop() {
		if st, err = Write(context.Background(), v, io.Discard, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(st.Bytes)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(st.Entries), "ns/member")
}

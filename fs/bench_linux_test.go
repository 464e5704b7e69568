package fs

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

// BenchmarkMountReadDirPlus lists a directory of 100,000 entries through the kernel. The kernel's
// listing cache is off, so every iteration reaches the server as READDIRPLUS requests.
func BenchmarkMountReadDirPlus(b *testing.B) {
	const n = 100_000
	v := newFakeView()
	big := v.dir(overlay.Root, "big")
	for i := range n {
		v.add(big, fmt.Sprintf("file-%07d", i), index.TypeRegular, 0o644)
	}
	fsys := newFileSystem(v, Options{})
	fsys.cacheDir = false
	mnt, _ := mountFS(b, fsys)
	dir := filepath.Join(mnt, "big")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		f, err := os.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil || len(names) != n {
			b.Fatalf("%d names, %v", len(names), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
}

// BenchmarkMountRead reads a 64 MiB file sequentially through the kernel, its data served by splice
// from the backing file (FileRange) or copied through the server (ReadAt). The file's page cache is
// dropped before each pass so that every byte is requested from the server.
func BenchmarkMountRead(b *testing.B) {
	const size = 64 << 20
	backing := filepath.Join(b.TempDir(), "layer")
	header := []byte("some header bytes")
	content := append(header, bytes.Repeat([]byte("imgfs benchmark data, 32 bytes.\n"), size/32)...)
	if err := os.WriteFile(backing, content, 0o644); err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(backing)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	v := newFakeView()
	for _, name := range []string{"splice", "readat"} {
		n := v.file(overlay.Root, name, nil)
		n.attr.Size, n.file, n.base, n.noRange = size, f, int64(len(header)), name == "readat"
	}
	mnt, _ := mountFS(b, newFileSystem(v, Options{}))
	for _, name := range []string{"splice", "readat"} {
		b.Run(name, func(b *testing.B) {
			buf := make([]byte, 1<<20)
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				f, err := os.Open(filepath.Join(mnt, name))
				if err != nil {
					b.Fatal(err)
				}
				if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
					b.Fatal(err)
				}
				got, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf)
				f.Close()
				if err != nil || got != size {
					b.Fatalf("read %d bytes, %v", got, err)
				}
			}
		})
	}
}

// BenchmarkMountWrite writes a 64 MiB file through the kernel in writes of 1 MiB, as cp does, to a
// writable in-memory view: the cost of the FUSE round trips, without a disk.
func BenchmarkMountWrite(b *testing.B) {
	const size, chunk = 64 << 20, 1 << 20
	v := newFakeWView()
	mnt, _ := mountFS(b, newFileSystem(v, Options{}))
	buf := bytes.Repeat([]byte("x"), chunk)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		f, err := os.Create(filepath.Join(mnt, "f"))
		if err != nil {
			b.Fatal(err)
		}
		for range size / chunk {
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(v.writes.Load())/float64(b.N), "writes/op")
}

// BenchmarkMountWriteOverlay writes a 64 MiB file through the kernel in writes of 1 MiB to a writable
// overlay view whose upper directory is on the temporary directory's file system.
func BenchmarkMountWriteOverlay(b *testing.B) {
	const size, chunk = 64 << 20, 1 << 20
	dir := filepath.Join(b.TempDir(), "upper")
	u, err := overlay.OpenUpper(overlay.UpperOptions{Dir: dir, Base: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer u.Close()
	v, err := overlay.New([]overlay.Layer{newMemLayer(memMember{"etc/passwd", index.TypeRegular, 0o644, "root"})}, overlay.Options{Upper: u})
	if err != nil {
		b.Fatal(err)
	}
	mnt, srv := mountFS(b, newFileSystem(v, Options{UpperDir: dir}))
	defer srv.Unmount() // before the upper directory closes
	buf := bytes.Repeat([]byte("x"), chunk)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		f, err := os.Create(filepath.Join(mnt, "f"))
		if err != nil {
			b.Fatal(err)
		}
		for range size / chunk {
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

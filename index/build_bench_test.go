package index

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"github.com/opencontainers/go-digest"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
	"unsafe"
)

// writeBenchTar writes a USTAR layer of nt*nm*nf files named data/tNNN/mNNN/fNNN (with their
// directories), each of 0 to 1024 bytes, and returns the number of members.
func writeBenchTar(w io.Writer, nt, nm, nf int) (int, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	tw := tar.NewWriter(bw)
	body := make([]byte, 1024)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	mt := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	members := 0
	dir := func(name string) error {
		members++
		return tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt, Format: tar.FormatUSTAR})
	}
	if err := dir("data/"); err != nil {
		return 0, err
	}
	k := 0
	for t := 0; t < nt; t++ {
		if err := dir(fmt.Sprintf("data/t%03d/", t)); err != nil {
			return 0, err
		}
		for m := 0; m < nm; m++ {
			if err := dir(fmt.Sprintf("data/t%03d/m%03d/", t, m)); err != nil {
				return 0, err
			}
			for f := 0; f < nf; f++ {
				size := (k * 7919) % 1025
				k++
				members++
				hdr := &tar.Header{Name: fmt.Sprintf("data/t%03d/m%03d/f%03d", t, m, f), Mode: 0o644,
					Size: int64(size), ModTime: mt, Format: tar.FormatUSTAR}
				if err := tw.WriteHeader(hdr); err != nil {
					return 0, err
				}
				if _, err := tw.Write(body[:size]); err != nil {
					return 0, err
				}
			}
		}
	}
	if err := tw.Close(); err != nil {
		return 0, err
	}
	return members, bw.Flush()
}

// benchTar returns a generated layer file: at $IMGFS_BENCH_TAR when set (kept, reused when present),
// else in a temporary directory.
func benchTar(b *testing.B, nt, nm, nf int) (string, int) {
	b.Helper()
	path := os.Getenv("IMGFS_BENCH_TAR")
	if path == "" || nt*nm*nf < 1e6 {
		path = filepath.Join(b.TempDir(), "layer.tar")
	}
	members := 1 + nt + nt*nm + nt*nm*nf
	if _, err := os.Stat(path); err == nil {
		return path, members
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := writeBenchTar(f, nt, nm, nf); err != nil {
		b.Fatal(err)
	}
	return path, members
}

// memBytes returns the memory held by the builder's own structures.
func (b *builder) memBytes(l *layout) int64 {
	n := int64(len(b.nodes)) << nodeChunkBits * int64(unsafe.Sizeof(bnode{}))
	for _, c := range b.names {
		n += int64(cap(c))
	}
	n += int64(cap(b.xattr) + cap(b.spars) + 8*len(b.hash))
	if l != nil {
		n += 4 * int64(cap(l.order)+cap(l.newID)+cap(l.kids)+cap(l.start))
	}
	return n
}

// benchBuild builds the table of the layer file at path b.N times and reports per-entry figures.
func benchBuild(b *testing.B, path string) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	b.SetBytes(st.Size())
	b.ReportAllocs()
	dir := b.TempDir()
	var entries int
	var peak, tableSize int64
	var heap uint64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var ms0, ms1 runtime.MemStats
		if i == 0 {
			b.StopTimer()
			runtime.GC()
			runtime.ReadMemStats(&ms0)
			b.StartTimer()
		}
		bl := newBuilder(discardLogger(), dir)
		if err := bl.scan(context.Background(), newScannerAt(f, 0, st.Size()), nil); err != nil {
			b.Fatal(err)
		}
		scanMem := bl.memBytes(nil)
		if i == 0 {
			b.StopTimer()
			runtime.ReadMemStats(&ms1)
			heap = ms1.HeapAlloc - ms0.HeapAlloc
			b.StartTimer()
		}
		t, err := storeTable(bl, TableInfo{StreamSize: st.Size(), BlobSize: st.Size()}, filepath.Join(dir, "t.table"), "")
		if err != nil {
			b.Fatal(err)
		}
		entries = t.Len()
		fi, _ := os.Stat(filepath.Join(dir, "t.table"))
		tableSize = fi.Size()
		peak = max(scanMem, bl.memBytes(nil)+4*int64(bl.n)*4) // layout: order, newID, kids, start
		t.Close()
		bl.close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(entries), "ns/entry")
	b.ReportMetric(float64(peak)/float64(entries), "build-B/entry")
	b.ReportMetric(float64(heap)/float64(entries), "heap-after-scan-B/entry")
	b.ReportMetric(float64(tableSize)/float64(entries), "table-B/entry")
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// BenchmarkBuild builds the table of a generated 20,000-file layer.
func BenchmarkBuild(b *testing.B) {
	path, _ := benchTar(b, 2, 100, 100)
	benchBuild(b, path)
}

// BenchmarkBuild1M builds the table of a generated 1,000,000-file layer (about 1.3 GB on disk); it runs
// only with IMGFS_BENCH_1M=1. IMGFS_BENCH_TAR=path keeps the generated layer there for reuse.
func BenchmarkBuild1M(b *testing.B) {
	if os.Getenv("IMGFS_BENCH_1M") != "1" {
		b.Skip("set IMGFS_BENCH_1M=1 to run")
	}
	path, _ := benchTar(b, 100, 100, 100)
	benchBuild(b, path)
}

// fileDigest is the sha256 digest of a file: the diff ID of an uncompressed layer (Open checks it).
func fileDigest(b *testing.B, path string) digest.Digest {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	d, err := digest.SHA256.FromReader(f)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkOpenWarm opens a cached table through Open (20,000 files; 1,000,000 with IMGFS_BENCH_1M=1).
func BenchmarkOpenWarm(b *testing.B) {
	nt := 2
	if os.Getenv("IMGFS_BENCH_1M") == "1" {
		nt = 100
	}
	path, _ := benchTar(b, nt, 100, 100)
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	blob := Blob{R: f, Size: st.Size(), File: f}
	opts := Options{CacheDir: b.TempDir(), DiffID: fileDigest(b, path)}
	l, err := Open(context.Background(), blob, opts)
	if err != nil {
		b.Fatal(err)
	}
	entries := l.Len()
	l.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l, err := Open(context.Background(), blob, opts)
		if err != nil {
			b.Fatal(err)
		}
		l.Close()
	}
	b.ReportMetric(float64(entries), "entries")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/open")
}

// BenchmarkScanBuffer scans a generated layer with several buffer sizes (the choice of scanBufSize).
func BenchmarkScanBuffer(b *testing.B) {
	path, _ := benchTar(b, 2, 100, 100)
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	for _, size := range []int{16 << 10, 64 << 10, 256 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dK", size>>10), func(b *testing.B) {
			b.SetBytes(st.Size())
			for i := 0; i < b.N; i++ {
				sc := newScannerAt(f, 0, st.Size())
				sc.buf = make([]byte, size)
				for {
					_, err := sc.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkOpenCold builds and persists the table through Open with an empty cache each time (20,000
// files; 1,000,000 with IMGFS_BENCH_1M=1): the cold mount path end to end.
func BenchmarkOpenCold(b *testing.B) {
	nt := 2
	if os.Getenv("IMGFS_BENCH_1M") == "1" {
		nt = 100
	}
	path, _ := benchTar(b, nt, 100, 100)
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	blob := Blob{R: f, Size: st.Size(), File: f}
	diffID := fileDigest(b, path)
	b.SetBytes(st.Size())
	b.ReportAllocs()
	entries := 0
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		opts := Options{CacheDir: filepath.Join(b.TempDir(), fmt.Sprint(i)), DiffID: diffID}
		b.StartTimer()
		l, err := Open(context.Background(), blob, opts)
		if err != nil {
			b.Fatal(err)
		}
		entries = l.Len()
		l.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(entries), "ns/entry")
}

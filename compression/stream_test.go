package compression

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
)

// hexText returns n bytes of random hex digits in lines: about 4 bits of entropy per byte.
func hexText(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		if i%64 == 63 {
			b[i] = '\n'
		} else {
			b[i] = digits[r.IntN(16)]
		}
	}
	return b
}

// randomBytes returns n incompressible bytes.
func randomBytes(seed uint64, n int) []byte {
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	b := make([]byte, n)
	r.Read(b)
	return b
}

// blobAt places data at an offset inside a larger buffer with junk around it, so that Blob.Off and
// Blob.Size are honoured.
func blobAt(data []byte) Blob {
	const pad = 1237
	buf := make([]byte, pad+len(data)+pad)
	for i := range buf {
		buf[i] = 0xa5
	}
	copy(buf[pad:], data)
	return Blob{R: bytes.NewReader(buf), Off: pad, Size: int64(len(data))}
}

func keyOf(data []byte) digest.Digest { return digest.FromBytes(data) }

// indexStream runs an indexing pass and returns the stream, checking the sequential output and diff_id.
func indexStream(t testing.TB, blob Blob, c Format, opts Options, want []byte) *Stream {
	t.Helper()
	ix, err := NewIndexer(context.Background(), blob, c, opts)
	if err != nil {
		t.Fatalf("NewIndexer: %v", err)
	}
	defer ix.Close()
	if n, err := ix.Read(nil); n != 0 || (err != nil && err != io.EOF) {
		t.Fatalf("Read(nil) = %d, %v", n, err)
	}
	got, err := io.ReadAll(ix)
	if err != nil {
		t.Fatalf("indexing pass: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("indexing pass output differs: got %d bytes, want %d", len(got), len(want))
	}
	if ix.Consumed() != blob.Size {
		t.Errorf("Consumed = %d, want %d", ix.Consumed(), blob.Size)
	}
	if d := ix.DiffID(); d != digest.FromBytes(want) {
		t.Errorf("DiffID = %s, want %s", d, digest.FromBytes(want))
	}
	s, err := ix.Finish()
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// checkStream compares every kind of read of s with want.
func checkStream(t testing.TB, s *Stream, want []byte) {
	t.Helper()
	if s.Size() != int64(len(want)) {
		t.Fatalf("Size = %d, want %d", s.Size(), len(want))
	}
	// Sequential reads as FUSE does them.
	got := make([]byte, len(want))
	for off := 0; off < len(want); off += 128 << 10 {
		end := min(off+128<<10, len(want))
		n, err := s.ReadAt(got[off:end], int64(off))
		if n != end-off || (err != nil && !(err == io.EOF && end == len(want))) {
			t.Fatalf("sequential ReadAt(%d, %d) = %d, %v", end-off, off, n, err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("sequential reads differ")
	}
	// Random reads, including some across the end.
	r := rand.New(rand.NewPCG(uint64(len(want)), 2))
	buf := make([]byte, 300<<10)
	for range 60 {
		off := r.Int64N(int64(len(want)) + 1)
		n := r.IntN(len(buf) + 1)
		if r.IntN(4) == 0 {
			n = r.IntN(4097)
		}
		checkReadAt(t, s, want, buf[:n], off)
	}
	checkReadAt(t, s, want, buf[:10], int64(len(want)))
	checkReadAt(t, s, want, buf[:10], int64(len(want))-3)
	checkReadAt(t, s, want, buf[:0], int64(len(want))/2)
	if _, err := s.ReadAt(buf[:1], -1); err == nil {
		t.Errorf("ReadAt at -1: no error")
	}
	// Concurrent readers, each sequential in its own region.
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := make([]byte, 20000)
			start := int64(len(want)) * int64(g) / 6
			for off := start; off < min(start+200000, int64(len(want))); off += int64(len(b)) {
				n, err := s.ReadAt(b, off)
				if err != nil && err != io.EOF {
					t.Errorf("concurrent ReadAt(%d): %v", off, err)
					return
				}
				if !bytes.Equal(b[:n], want[off:off+int64(n)]) {
					t.Errorf("concurrent ReadAt(%d): wrong data", off)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func checkReadAt(t testing.TB, s *Stream, want, buf []byte, off int64) {
	t.Helper()
	n, err := s.ReadAt(buf, off)
	wantN := int(max(0, min(int64(len(buf)), int64(len(want))-off)))
	if n != wantN {
		t.Fatalf("ReadAt(len %d, off %d) = %d, %v; want %d bytes", len(buf), off, n, err, wantN)
	}
	if wantN < len(buf) && err != io.EOF {
		t.Fatalf("ReadAt(len %d, off %d) short read without io.EOF: %v", len(buf), off, err)
	}
	if wantN == len(buf) && err != nil && !(err == io.EOF && off+int64(wantN) == int64(len(want))) {
		t.Fatalf("ReadAt(len %d, off %d): %v", len(buf), off, err)
	}
	if n > 0 && !bytes.Equal(buf[:n], want[off:off+int64(n)]) {
		t.Fatalf("ReadAt(len %d, off %d): wrong data", len(buf), off)
	}
}

func TestStreamNone(t *testing.T) {
	t.Parallel()
	want := hexText(1, 300<<10)
	blob := blobAt(want)
	s := indexStream(t, blob, None, Options{}, want)
	checkStream(t, s, want)
	if s.DiffID() != digest.FromBytes(want) {
		t.Errorf("DiffID = %s", s.DiffID())
	}
	s2, ok, err := Load(context.Background(), blob, None, Options{})
	if err != nil || !ok {
		t.Fatalf("Load = %v, %v", ok, err)
	}
	checkStream(t, s2, want)
	if _, ok := s2.File(); ok {
		t.Errorf("File() ok for a blob without a file")
	}

	// A blob backed by a file gives that file and its offset, for splice.
	f, err := os.Create(filepath.Join(t.TempDir(), "blob"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(make([]byte, 100))
	f.Write(want)
	fs, err := Open(context.Background(), Blob{R: f, Off: 100, Size: int64(len(want)), File: f}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	if got, ok := fs.File(); !ok || got != f || fs.FileOffset() != 100 || fs.Format() != None {
		t.Errorf("File() = %v, %v, offset %d", got, ok, fs.FileOffset())
	}
	checkStream(t, fs, want)
}

func TestStreamKeyValidation(t *testing.T) {
	t.Parallel()
	data := gzipBytes(t, hexText(1, 1000))
	for _, key := range []digest.Digest{
		"sha256:../../x",
		"sha256:" + digest.Digest(strings.Repeat("A", 64)),
		"sha512:" + digest.Digest(strings.Repeat("a", 128)),
		"sha256:" + digest.Digest(strings.Repeat("a", 63)),
		"sha256:" + digest.Digest(strings.Repeat("a", 64)) + "\n",
	} {
		opts := Options{CacheDir: t.TempDir(), Key: key}
		if _, err := Open(context.Background(), blobAt(data), opts); err == nil {
			t.Errorf("key %q accepted", key)
		}
	}
}

func TestOpenUnsupported(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"plain.txt.bz2", "plain.txt.xz", "plain.txt.lz4"} {
		data, err := os.ReadFile(filepath.Join("testdata", "stream", name))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Open(context.Background(), blobAt(data), Options{})
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: err = %v, want ErrUnsupported", name, err)
		}
	}
}

func TestOpenProgress(t *testing.T) {
	t.Parallel()
	want := hexText(3, 2<<20)
	data := gzipBytes(t, want)
	var last Progress
	calls := 0
	s, err := Open(context.Background(), blobAt(data), Options{Progress: func(p Progress) {
		calls++
		last = p
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if calls == 0 || last.Bytes != int64(len(data)) || last.Total != int64(len(data)) {
		t.Errorf("progress: %d calls, last %+v, want Bytes = Total = %d", calls, last, len(data))
	}
	checkStream(t, s, want)
}

func TestIndexerCancel(t *testing.T) {
	t.Parallel()
	data := gzipBytes(t, hexText(1, 1<<20))
	ctx, cancel := context.WithCancel(context.Background())
	ix, err := NewIndexer(ctx, blobAt(data), Gzip, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	cancel()
	if _, err := io.ReadAll(ix); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if _, err := ix.Finish(); err == nil {
		t.Errorf("Finish after a failed pass: no error")
	}
}

// TestStreamPersisted builds each kind of stream with a cache, loads it back, and checks that damaged
// or stale index files are detected and rebuilt.
func TestStreamPersisted(t *testing.T) {
	t.Parallel()
	want := hexText(5, 1<<20)
	cases := []struct {
		name string
		data []byte
		ext  string
		c    Format
	}{
		{"gzip", gzipBytes(t, want), ".gzi", Gzip},
		{"zstd-frames", zstdFrames(t, want, 50000), ".zti", Zstd},
		{"zstd-copy", zstdFrames(t, want, len(want)), ".zti", Zstd},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			opts := Options{SpanSize: 64 << 10, HugeFrame: 256 << 10, CacheDir: t.TempDir(), Key: keyOf(tc.data)}
			blob := blobAt(tc.data)
			if _, ok, err := Load(ctx, blob, tc.c, opts); ok || err != nil {
				t.Fatalf("Load before building = %v, %v", ok, err)
			}
			s := indexStream(t, blob, tc.c, opts, want)
			checkStream(t, s, want)
			s.Close()

			path, _, _ := cachePaths(opts, tc.ext)
			l, ok, err := Load(ctx, blob, tc.c, opts)
			if err != nil || !ok {
				t.Fatalf("Load = %v, %v", ok, err)
			}
			if l.DiffID() != digest.FromBytes(want) {
				t.Errorf("loaded DiffID = %s", l.DiffID())
			}
			checkStream(t, l, want)
			if f, ok := l.File(); ok != (tc.name == "zstd-copy") {
				t.Errorf("File() ok = %v", ok)
			} else if ok {
				rawPath, _, _ := cachePaths(opts, ".raw")
				if f.Name() != rawPath { // loaded, so opened by its final name
					t.Errorf("File() = %s, want %s", f.Name(), rawPath)
				}
			}
			l.Close()

			// The same index does not fit a blob of another size.
			if _, ok, err := Load(ctx, blobAt(append(tc.data, 0)), tc.c, opts); ok || err != nil {
				t.Errorf("Load for another size = %v, %v", ok, err)
			}

			orig, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			damage := map[string]func([]byte) []byte{
				"header":    func(b []byte) []byte { b[20] ^= 1; return b },
				"version":   func(b []byte) []byte { b[8] = 9; return b },
				"table":     func(b []byte) []byte { b[len(b)-pointSize+1] ^= 1; return b },
				"truncated": func(b []byte) []byte { return b[:len(b)-1] },
				"short":     func(b []byte) []byte { return b[:10] },
				"empty":     func(b []byte) []byte { return nil },
			}
			if tc.ext == ".gzi" {
				damage["window"] = func(b []byte) []byte { b[streamHeaderSize+100] ^= 1; return b }
			}
			for name, f := range damage {
				if err := os.WriteFile(path, f(bytes.Clone(orig)), 0o644); err != nil {
					t.Fatal(err)
				}
				if _, ok, err := Load(ctx, blob, tc.c, opts); ok || err != nil {
					t.Errorf("%s: Load of a damaged index = %v, %v", name, ok, err)
				}
				s, err := Open(ctx, blob, opts)
				if err != nil {
					t.Fatalf("%s: Open: %v", name, err)
				}
				checkReadAt(t, s, want, make([]byte, 100000), int64(len(want))/3)
				s.Close()
				if l, ok, err := Load(ctx, blob, tc.c, opts); !ok || err != nil {
					t.Errorf("%s: not rebuilt: %v, %v", name, ok, err)
				} else {
					l.Close()
				}
			}
			if tc.name == "zstd-copy" {
				rawPath, _, _ := cachePaths(opts, ".raw")
				os.Truncate(rawPath, 100)
				if _, ok, err := Load(ctx, blob, tc.c, opts); ok || err != nil {
					t.Errorf("Load with a truncated copy = %v, %v", ok, err)
				}
				os.Remove(rawPath)
				if _, ok, err := Load(ctx, blob, tc.c, opts); ok || err != nil {
					t.Errorf("Load with a missing copy = %v, %v", ok, err)
				}
			}
			// No temporary files are left behind.
			entries, _ := os.ReadDir(filepath.Dir(path))
			for _, e := range entries {
				if strings.HasSuffix(e.Name(), ".tmp") {
					t.Errorf("temporary file left: %s", e.Name())
				}
			}
		})
	}
}

// TestStreamChangedBlob reads through an index built for other bytes of the same size: reads give
// errors or wrong bytes, never a panic.
func TestStreamChangedBlob(t *testing.T) {
	t.Parallel()
	want := hexText(6, 512<<10)
	for _, tc := range []struct {
		name string
		data []byte
		c    Format
	}{
		{"gzip", gzipBytes(t, want), Gzip},
		{"zstd", zstdFrames(t, want, 20000), Zstd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{SpanSize: 32 << 10, CacheDir: t.TempDir(), Key: keyOf(tc.data)}
			indexStream(t, blobAt(tc.data), tc.c, opts, want).Close()
			r := rand.New(rand.NewPCG(9, 9))
			for i := range 20 {
				bad := bytes.Clone(tc.data)
				for range 1 + i {
					bad[r.IntN(len(bad))] ^= byte(1 + r.IntN(255))
				}
				s, ok, err := Load(context.Background(), blobAt(bad), tc.c, opts)
				if !ok || err != nil {
					t.Fatalf("Load = %v, %v", ok, err)
				}
				buf := make([]byte, 64<<10)
				for off := int64(0); off < s.Size(); off += int64(len(buf)) {
					s.ReadAt(buf, off)
				}
				for range 10 {
					s.ReadAt(buf[:r.IntN(len(buf))], r.Int64N(s.Size()))
				}
				s.Close()
			}
		})
	}
}

func TestStreamClosed(t *testing.T) {
	t.Parallel()
	want := hexText(1, 100000)
	s := indexStream(t, blobAt(gzipBytes(t, want)), Gzip, Options{}, want)
	s.Close()
	if _, err := s.ReadAt(make([]byte, 10), 0); err == nil {
		t.Errorf("ReadAt after Close: no error")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestIdleCursorBudget checks that idle decoders are bounded across streams, and that streams keep
// reading correctly while their cursors are evicted by others.
func TestIdleCursorBudget(t *testing.T) {
	t.Parallel()
	want := hexText(41, 1<<20)
	before := idleZstd.len() + idleGzip.len() // of streams other tests left open
	var streams []*Stream
	for i := range 4 {
		streams = append(streams, indexStream(t, blobAt(zstdFrames(t, want, 5000+i)), Zstd, Options{SpanSize: 64 << 10}, want),
			indexStream(t, blobAt(gzipMembers(t, split(want, 300000+i)...)), Gzip, Options{SpanSize: 64 << 10}, want))
	}
	var wg sync.WaitGroup
	for g, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 5))
			buf := make([]byte, 8000)
			for range 40 {
				off := r.Int64N(s.Size())
				n, err := s.ReadAt(buf, off)
				if (err != nil && err != io.EOF) || !bytes.Equal(buf[:n], want[off:off+int64(n)]) {
					t.Errorf("ReadAt(%d): %v", off, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := idleZstd.len(); n > idleZstd.max {
		t.Errorf("%d idle zstd cursors, max %d", n, idleZstd.max)
	}
	if n := idleGzip.len(); n > idleGzip.max {
		t.Errorf("%d idle gzip cursors, max %d", n, idleGzip.max)
	}
	total := 0
	for _, s := range streams {
		s.mu.Lock()
		if len(s.idle) > maxStreamCursors {
			t.Errorf("stream with %d idle cursors", len(s.idle))
		}
		total += len(s.idle)
		s.mu.Unlock()
	}
	if total > idleZstd.len()+idleGzip.len() {
		t.Errorf("%d idle cursors in streams, only %d in the LRUs", total, idleZstd.len()+idleGzip.len())
	}
	for _, s := range streams {
		s.Close()
	}
	if n := idleZstd.len() + idleGzip.len(); n > before {
		t.Errorf("closed streams left %d idle cursors in the LRUs", n-before)
	}
}

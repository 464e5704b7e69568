package index

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imgfs/imgfs/compression"
	"github.com/imgfs/imgfs/internal/tartest"
	"github.com/opencontainers/go-digest"
)

func sha(b []byte) digest.Digest { return digest.FromBytes(b) }

// fileBlob writes data to a file and returns it as a Blob at offset off (with junk before and after).
func fileBlob(t testing.TB, data []byte, off int64) Blob {
	t.Helper()
	path := filepath.Join(t.TempDir(), "blob")
	content := append(bytes.Repeat([]byte{'J'}, int(off)), data...)
	content = append(content, "trailing junk"...)
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return Blob{R: f, Off: off, Size: int64(len(data)), File: f}
}

// tableFiles lists the persisted tables under a cache root.
func tableFiles(t testing.TB, cache string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(cache, "index", "v*", "sha256", "*.table"))
	return m
}

func TestOpenUncompressedCache(t *testing.T) {
	t.Parallel()
	data := sampleTar(t)
	cache := t.TempDir()
	blob := fileBlob(t, data, 1000)
	opts := Options{CacheDir: cache, DiffID: sha(data), Digest: sha(data)}
	var calls []Progress
	opts.Progress = func(p Progress) { calls = append(calls, p) }

	l, err := Open(context.Background(), blob, opts)
	if err != nil {
		t.Fatal(err)
	}
	checkTable(t, l.Table)
	if l.Compression() != compression.None {
		t.Errorf("compression %v", l.Compression())
	}
	if len(calls) == 0 || calls[len(calls)-1].Entries != 11 || calls[len(calls)-1].Bytes != int64(len(data)) ||
		calls[len(calls)-1].Total != int64(len(data)) {
		t.Errorf("progress %+v", calls)
	}
	want := dump(l.Table)
	id := lookupPath(t, l.Table, "etc/passwd")
	f, off, ok := l.FileRange(id)
	if !ok || f != blob.File {
		t.Fatalf("FileRange: %v %d %v", f, off, ok)
	}
	buf := make([]byte, 11)
	if _, err := f.ReadAt(buf, off); err != nil || string(buf) != "root:x:0:0\n" {
		t.Errorf("file range holds %q, %v", buf, err)
	}
	hl := lookupPath(t, l.Table, "bin/ping2")
	if f2, off2, ok := l.FileRange(hl); !ok || f2 != f {
		t.Errorf("FileRange of a hardlink: %v %d %v", f2, off2, ok)
	}
	if _, _, ok := l.FileRange(lookupPath(t, l.Table, "sparse.bin")); ok {
		t.Errorf("FileRange of a sparse file")
	}
	l.Close()
	files := tableFiles(t, cache)
	hx := strings.TrimPrefix(string(sha(data)), "sha256:")
	if len(files) != 1 || filepath.Base(files[0]) != hx+"-"+hx+".table" {
		t.Fatalf("cache files %v", files)
	}

	// Warm: from the cache, no build.
	calls = nil
	log, logs := logBuffer()
	opts.Logger = log
	l, err = Open(context.Background(), blob, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 0 || !strings.Contains(logs.String(), "loaded table") || !slices.Equal(dump(l.Table), want) {
		t.Errorf("warm open rebuilt: progress %v, log %s", calls, logs)
	}
	l.Close()

	// Forged: other bytes (the same tar and more zeros) claiming the same digest: refused, not served
	// from the table of the first.
	other := fileBlob(t, append(bytes.Clone(data), make([]byte, 512)...), 0)
	logs.Reset()
	if l, err := Open(context.Background(), other, opts); !errors.Is(err, ErrDigestMismatch) {
		if err == nil {
			l.Close()
		}
		t.Errorf("other bytes under the same digest: %v", err)
	}

	// Corrupt: rebuilt.
	b, _ := os.ReadFile(files[0])
	b[len(b)-3] ^= 1
	os.WriteFile(files[0], b, 0o644)
	logs.Reset()
	l, err = Open(context.Background(), blob, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "rebuilding table") || !slices.Equal(dump(l.Table), want) {
		t.Errorf("corrupt table not rebuilt: %s", logs)
	}
	l.Close()
	if _, err := OpenTable(files[0]); err != nil {
		t.Errorf("cache not repaired: %v", err)
	}
}

func TestOpenCompressed(t *testing.T) {
	t.Parallel()
	data := sampleTar(t)
	for name, z := range map[string]func(testing.TB, []byte) []byte{"gzip": tartest.Gzip, "zstd": tartest.Zstd} {
		t.Run(name, func(t *testing.T) {
			comp := z(t, data)
			cache := t.TempDir()
			blob := fileBlob(t, comp, 3)
			opts := Options{CacheDir: cache, DiffID: sha(data), Digest: sha(comp)}
			var last Progress
			opts.Progress = func(p Progress) { last = p }
			l, err := Open(context.Background(), blob, opts)
			if err != nil {
				t.Fatal(err)
			}
			checkTable(t, l.Table)
			if last.Entries != 11 || last.Bytes != int64(len(comp)) || last.Total != int64(len(comp)) {
				t.Errorf("last progress %+v", last)
			}
			want := dump(l.Table)
			checkContent(t, l)
			if l.Info().StreamSize != int64(len(data)) || l.Info().Key != sha(data) {
				t.Errorf("info %+v", l.Info())
			}
			l.Close()

			log, logs := logBuffer()
			opts.Logger = log
			last = Progress{}
			l, err = Open(context.Background(), blob, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if last != (Progress{}) || !strings.Contains(logs.String(), "loaded table") || !slices.Equal(dump(l.Table), want) {
				t.Errorf("warm open rebuilt: %+v %s", last, logs)
			}
			checkContent(t, l)

			// A wrong DiffID is an error naming both digests; nothing of it is cached.
			bad := Options{CacheDir: t.TempDir(), DiffID: sha([]byte("other")), Digest: sha(comp)}
			_, err = Open(context.Background(), blob, bad)
			if !errors.Is(err, ErrDiffIDMismatch) || !strings.Contains(err.Error(), string(sha(data))) ||
				!strings.Contains(err.Error(), string(bad.DiffID)) {
				t.Errorf("wrong DiffID: %v", err)
			}
			if files := tableFiles(t, bad.CacheDir); len(files) != 0 {
				t.Errorf("mismatching layer cached: %v", files)
			}
		})
	}
}

// checkContent compares the data of every regular file of the sample with archive/tar's view.
func checkContent(t *testing.T, l *Layer) {
	t.Helper()
	for path, want := range map[string]string{"etc/passwd": "root:x:0:0\n", "bin/ping": "ELF", "bin/ping2": "ELF"} {
		buf := make([]byte, 64)
		n, err := l.ReadAt(lookupPath(t, l.Table, path), buf, 0)
		if err != io.EOF || string(buf[:n]) != want {
			t.Errorf("%s: %q, %v", path, buf[:n], err)
		}
	}
	buf := make([]byte, 1<<20)
	n, err := l.ReadAt(lookupPath(t, l.Table, "sparse.bin"), buf, 0)
	if n != len(buf) || err != nil || !bytes.Equal(buf, sparseContent()) {
		t.Errorf("sparse.bin: %d, %v", n, err)
	}
}

func TestOpenNoKey(t *testing.T) {
	t.Parallel()
	data := sampleTar(t)
	cache := t.TempDir()
	for _, blob := range [][]byte{data, tartest.Gzip(t, data)} {
		l, err := Open(context.Background(), Blob{R: bytes.NewReader(blob), Size: int64(len(blob))}, Options{CacheDir: cache})
		if err != nil {
			t.Fatal(err)
		}
		checkTable(t, l.Table)
		l.Close()
	}
	// Compressed with a DiffID but no blob digest: the stream index cannot be kept, so neither is the table.
	gz := tartest.Gzip(t, data)
	l, err := Open(context.Background(), Blob{R: bytes.NewReader(gz), Size: int64(len(gz))},
		Options{CacheDir: cache, DiffID: sha(data)})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	var left []string
	filepath.Walk(cache, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) != 0 {
		t.Errorf("files left in the cache: %v", left)
	}
}

func TestOpenInvalidDigest(t *testing.T) {
	t.Parallel()
	data := sampleTar(t)
	good := sha(data)
	for _, d := range []digest.Digest{
		"sha256:../../../../tmp/x", "sha256:" + digest.Digest(strings.ToUpper(good.Encoded())), "sha512:" + good[7:],
		good[:len(good)-1], good + "0", "sha256:" + digest.Digest(strings.Repeat("g", 64)), "sha256/" + good[7:],
		digest.Digest(good.Encoded()),
	} {
		for _, opts := range []Options{{DiffID: d}, {Digest: d}, {DiffID: good, Digest: d}} {
			opts.CacheDir = t.TempDir()
			_, err := Open(context.Background(), Blob{R: bytes.NewReader(data), Size: int64(len(data))}, opts)
			if !errors.Is(err, ErrInvalidDigest) {
				t.Errorf("digest %q: %v", d, err)
			}
		}
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	good := tartest.Tar(t, tartest.File("a", strings.Repeat("x", 3000)), tartest.File("b", "y"))
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"garbage", bytes.Repeat([]byte("not a tar "), 100), ErrNotTar},
		{"truncated", good[:2000], ErrTarTruncated},
		{"truncated gzip", tartest.Gzip(t, good)[:100], io.ErrUnexpectedEOF},
		{"xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0, 1, 2, 3, 4}, compression.ErrUnsupported},
		{"gzip of garbage", tartest.Gzip(t, bytes.Repeat([]byte("not a tar "), 100)), ErrNotTar},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(context.Background(), Blob{R: bytes.NewReader(tt.data), Size: int64(len(tt.data))},
				Options{CacheDir: t.TempDir(), Digest: sha(tt.data)})
			if !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestOpenCancel(t *testing.T) {
	t.Parallel()
	var ms []tartest.Member
	for i := 0; i < 2000; i++ {
		ms = append(ms, tartest.File(fmt.Sprintf("f%d", i), "x"))
	}
	data := tartest.Tar(t, ms...)
	for _, blob := range [][]byte{data, tartest.Gzip(t, data)} {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := Open(ctx, Blob{R: bytes.NewReader(blob), Size: int64(len(blob))}, Options{})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v", err)
		}
	}
}

// TestOpenConcurrent builds the same layer from several goroutines sharing a cache: all succeed.
func TestOpenConcurrent(t *testing.T) {
	t.Parallel()
	data := sampleTar(t)
	cache := t.TempDir()
	opts := Options{CacheDir: cache, DiffID: sha(data)}
	// A crashed builder's leftover, old enough to be removed, and a fresh one, kept.
	dir := tableDir(cache)
	os.MkdirAll(dir, 0o755)
	stale, fresh := filepath.Join(dir, ".table-1.tmp"), filepath.Join(dir, ".table-2.tmp")
	os.WriteFile(stale, []byte("x"), 0o644)
	os.WriteFile(fresh, []byte("x"), 0o644)
	past := time.Now().Add(-2 * time.Hour)
	os.Chtimes(stale, past, past)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	blob := fileBlob(t, data, 0)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := Open(context.Background(), blob, opts)
			if err == nil {
				if l.Len() != 15 {
					err = fmt.Errorf("%d entries", l.Len())
				}
				if cerr := l.Close(); err == nil {
					err = cerr
				}
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if files := tableFiles(t, cache); len(files) != 1 {
		t.Errorf("cache files %v", files)
	}
	tmp, _ := filepath.Glob(filepath.Join(cache, "index", "*", "*", ".table-*"))
	if len(tmp) != 1 || tmp[0] != fresh {
		t.Errorf("temporary files left: %v", tmp)
	}
}

// TestOpenKeyedByVerifiedPair opens one layer stored plain and gzip with one cache: each blob has its
// own table, keyed by its digest and diff ID; reopening a blob loads it; a copy of a blob (other bytes
// as far as the cache can tell) is proven again.
func TestOpenKeyedByVerifiedPair(t *testing.T) {
	t.Parallel()
	data := sampleTar(t)
	gz := tartest.Gzip(t, data)
	cache := t.TempDir()
	plain := Options{CacheDir: cache, DiffID: sha(data), Digest: sha(data)}
	comp := Options{CacheDir: cache, DiffID: sha(data), Digest: sha(gz)}
	plainBlob, gzBlob := fileBlob(t, data, 0), fileBlob(t, gz, 0)

	l, err := Open(context.Background(), plainBlob, plain)
	if err != nil {
		t.Fatal(err)
	}
	want := dump(l.Table)
	l.Close()

	for i, tc := range []struct {
		o      Options
		blob   Blob
		loaded bool
	}{{comp, gzBlob, false}, {plain, plainBlob, true}, {comp, gzBlob, true}, {comp, fileBlob(t, gz, 0), false}} {
		log, logs := logBuffer()
		tc.o.Logger = log
		l, err := Open(context.Background(), tc.blob, tc.o)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(logs.String(), "stale") || !slices.Equal(dump(l.Table), want) {
			t.Errorf("open %d: table rebuilt or different:\n%s", i, logs)
		}
		if got := strings.Contains(logs.String(), "loaded table"); got != tc.loaded {
			t.Errorf("open %d: loaded from the cache %v, want %v:\n%s", i, got, tc.loaded, logs)
		}
		checkContent(t, l)
		l.Close()
	}
	if files := tableFiles(t, cache); len(files) != 2 {
		t.Errorf("tables %v, want one per (digest, diff ID)", files)
	}
}

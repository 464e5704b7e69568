package index

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"

	"github.com/imgfs/imgfs/compression"
	"github.com/imgfs/imgfs/internal/tartest"
)

// trustTars returns two layer tars of the same length with different names and contents.
func trustTars(t testing.TB) (a, b []byte) {
	mk := func(prefix string, fill byte) []byte {
		var ms []tartest.Member
		for i := range 12 {
			body := bytes.Repeat([]byte{fill + byte(i)}, 9000+i*37)
			ms = append(ms, tartest.Member{Name: fmt.Sprintf("%s/file-%02d", prefix, i), Body: body})
		}
		return tartest.Tar(t, ms...)
	}
	a, b = mk("alpha", 'a'), mk("bravo", 'A')
	if len(a) != len(b) {
		t.Fatalf("tars of %d and %d bytes", len(a), len(b))
	}
	return a, b
}

// zstdFrames compresses every chunk of data of the given size as its own frame.
func zstdFrames(t testing.TB, data []byte, chunk int) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	var out []byte
	for len(data) > 0 {
		n := min(chunk, len(data))
		out = enc.EncodeAll(data[:n], out)
		data = data[n:]
	}
	return out
}

// storedGzip compresses b without compression, so that equal inputs lengths give equal blob lengths.
func storedGzip(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.NoCompression)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// decompress returns the uncompressed bytes of a blob as archive/tar's view would read them.
func decompress(b []byte) ([]byte, error) {
	c, _ := compression.Detect(bytes.NewReader(b), 0)
	switch c {
	case compression.Gzip:
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(zr)
	case compression.Zstd:
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		return io.ReadAll(zr)
	}
	return b, nil
}

// tarFiles lists the regular files of a tar with their contents.
func tarFiles(t testing.TB, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			out[h.Name] = string(body)
		}
	}
}

// layerFiles lists the regular files of an opened layer with the contents read through it.
func layerFiles(t testing.TB, l *Layer) map[string]string {
	t.Helper()
	out := map[string]string{}
	for id := ID(0); int(id) < l.Len(); id++ {
		e := l.Entry(id)
		if e.Type != TypeRegular {
			continue
		}
		buf := make([]byte, e.Size)
		n, err := l.ReadAt(id, buf, 0)
		if n != len(buf) || (err != nil && err != io.EOF) {
			out[l.Path(id)] = fmt.Sprintf("read error after %d bytes: %v", n, err)
			continue
		}
		out[l.Path(id)] = string(buf)
	}
	return out
}

// trustInput is a blob file and what it claims to be.
type trustInput struct {
	name   string
	data   []byte // original bytes
	digest digest.Digest
	diffID digest.Digest
	path   string
	blob   Blob
}

// TestCacheTrust opens forged and tampered layers against one cache in every order of pairs, after
// tampering with blobs in place and after editing every cache file by hand. Whenever an Open succeeds,
// the blob's current bytes hash to the claimed digest and diff ID, and every name and byte the layer
// shows is what those bytes hold; an honest, untouched blob always opens.
func TestCacheTrust(t *testing.T) {
	t.Parallel()
	// Small restart spacing and frame bound: gzip windows; zstd with restart points and with a copy.
	const span, huge = 16 << 10, 48 << 10

	tarA, tarB := trustTars(t)
	gzA, gzB := storedGzip(t, tarA), storedGzip(t, tarB)
	zsA, zsB := zstdFrames(t, tarA, 16<<10), zstdFrames(t, tarB, 16<<10)
	z1A, z1B := tartest.Zstd(t, tarA), tartest.Zstd(t, tarB) // one frame: served from a decompressed copy
	if len(gzA) != len(gzB) {
		t.Fatalf("stored gzip of %d and %d bytes", len(gzA), len(gzB))
	}
	dA := sha(tarA)
	type spec struct {
		name           string
		data           []byte
		digest, diffID digest.Digest
		honest         bool
	}
	specs := []spec{
		{"A gzip", gzA, sha(gzA), dA, true},
		{"A zstd", zsA, sha(zsA), dA, true},
		{"A zstd one frame", z1A, sha(z1A), dA, true},
		{"A plain", tarA, dA, dA, true},
		{"B gzip claiming A's diff_id", gzB, sha(gzB), dA, false},
		{"B gzip claiming A's digest and diff_id", gzB, sha(gzA), dA, false},
		{"B zstd claiming A's diff_id", zsB, sha(zsB), dA, false},
		{"B zstd claiming A's digest and diff_id", zsB, sha(zsA), dA, false},
		{"B zstd one frame claiming A's diff_id", z1B, sha(z1B), dA, false},
		{"B plain claiming A's diff_id", tarB, sha(tarB), dA, false},
		{"B plain claiming A's digest as both", tarB, dA, dA, false},
		{"A plain claiming B's digest as both", tarA, sha(tarB), sha(tarB), false},
	}
	var openChecked func(t *testing.T, cache string, in *trustInput, step string, strict bool) bool
	setup := func(t *testing.T) (string, []*trustInput) {
		dir := t.TempDir()
		var ins []*trustInput
		for i, s := range specs {
			in := &trustInput{name: s.name, data: s.data, digest: s.digest, diffID: s.diffID}
			in.path = filepath.Join(dir, fmt.Sprintf("blob-%d", i))
			// The blob is a range of a bigger file, as in a tar archive.
			if err := os.WriteFile(in.path, slices.Concat([]byte("head"), s.data, []byte("tail")), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(in.path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			in.blob = Blob{R: f, Off: 4, Size: int64(len(s.data)), File: f}
			ins = append(ins, in)
		}
		return t.TempDir(), ins
	}
	// open opens in and checks the invariant; it returns whether the layer opened.
	open := func(t *testing.T, cache string, in *trustInput, step string) bool {
		return openChecked(t, cache, in, step, true)
	}
	openChecked = func(t *testing.T, cache string, in *trustInput, step string, strict bool) bool {
		t.Helper()
		l, err := Open(context.Background(), in.blob, Options{CacheDir: cache, Digest: in.digest, DiffID: in.diffID, spanSize: span, hugeFrame: huge})
		cur := make([]byte, in.blob.Size)
		if _, rerr := in.blob.R.ReadAt(cur, in.blob.Off); rerr != nil {
			t.Fatal(rerr)
		}
		raw, derr := decompress(cur)
		true_ := derr == nil && sha(cur) == in.digest && sha(raw) == in.diffID
		if err != nil {
			if true_ {
				t.Errorf("%s: %s: an honest blob was refused: %v", step, in.name, err)
			} else if strict && !errors.Is(err, ErrDiffIDMismatch) && !errors.Is(err, ErrDigestMismatch) {
				t.Errorf("%s: %s: refused for the wrong reason: %v", step, in.name, err)
			}
			return false
		}
		defer l.Close()
		if !true_ {
			t.Errorf("%s: %s: opened, but its bytes are not what it claims", step, in.name)
			return true
		}
		if got, want := layerFiles(t, l), tarFiles(t, raw); !maps(got, want) {
			t.Errorf("%s: %s: the layer shows %d files %v, the blob holds %v", step, in.name, len(got), keys(got), keys(want))
		}
		return true
	}

	// The three parts share nothing but the specs: each has its own blobs and caches.
	t.Run("pairs", func(t *testing.T) {
		t.Parallel()
		_, ins := setup(t) // nothing changes the blobs here: one set for all pairs
		for i := range specs {
			for j := range specs {
				cache := t.TempDir()
				step := fmt.Sprintf("%s, then %s", specs[i].name, specs[j].name)
				for k, in := range []*trustInput{ins[i], ins[j], ins[j], ins[i]} {
					if got := open(t, cache, in, fmt.Sprintf("%s (open %d)", step, k+1)); got != specs[slices.Index(ins, in)].honest {
						t.Errorf("%s (open %d): %s opened %v", step, k+1, in.name, got)
					}
				}
			}
		}
	})

	t.Run("tampered in place", func(t *testing.T) {
		t.Parallel()
		for i, s := range specs {
			if !s.honest {
				continue
			}
			for _, where := range []string{"start", "middle", "end"} {
				cache, ins := setup(t)
				for _, in := range ins {
					open(t, cache, in, "before")
				}
				// Same length, other bytes: B's where B is the same length, else a flipped byte.
				in := ins[i]
				b, _ := os.ReadFile(in.path)
				var other []byte
				switch s.name {
				case "A gzip":
					other = gzB
				case "A plain":
					other = tarB
				}
				pos := 4 + map[string]int{"start": len(in.data) / 10, "middle": len(in.data) / 2, "end": len(in.data) - len(in.data)/10 - 1}[where]
				if other != nil && where == "start" {
					copy(b[4:], other)
				} else {
					b[pos] ^= 0x20
				}
				f, err := os.OpenFile(in.path, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.WriteAt(b, 0) // in place: same inode, same size
				f.Close()
				// A write in the same clock tick as the first open would keep the mtime; a real edit
				// comes later. Move the times on, as a later edit would.
				bumpTimes(t, in.path)
				for k := range 2 {
					// A damaged stream is refused for what it is; any refusal will do.
					if openChecked(t, cache, in, fmt.Sprintf("%s tampered at the %s (open %d)", s.name, where, k+1), false) {
						t.Errorf("%s tampered at the %s: opened", s.name, where)
					}
				}
				for _, o := range ins {
					if o != in {
						open(t, cache, o, "after "+s.name+" was tampered")
					}
				}
			}
		}
	})

	t.Run("cache edited by hand", func(t *testing.T) {
		t.Parallel()
		cache, ins := setup(t)
		for _, in := range ins {
			open(t, cache, in, "before")
		}
		var files []string
		filepath.Walk(cache, func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				files = append(files, p)
			}
			return nil
		})
		kinds := map[string]int{}
		for _, p := range files {
			kinds[strings.TrimPrefix(filepath.Ext(p), ".")]++
		}
		for _, k := range []string{"table", "gzi", "zti", "raw", "json"} {
			if kinds[k] == 0 {
				t.Fatalf("no %s file in the cache: %v", k, kinds)
			}
		}
		for _, p := range files {
			orig, _ := os.ReadFile(p)
			for _, at := range []int{40, 170, len(orig) / 2, len(orig) - 5} {
				if at < 0 || at >= len(orig) {
					continue
				}
				for _, fix := range []bool{false, true} {
					b := bytes.Clone(orig)
					b[at] ^= 0x04
					if fix && strings.HasSuffix(p, ".table") {
						fixCRCs(b) // an edit that keeps the table's own checksums right
					} else if fix {
						continue
					}
					os.WriteFile(p, b, 0o644)
					bumpTimes(t, p)
					step := fmt.Sprintf("%s edited at %d (checksums fixed %v)", filepath.Base(p), at, fix)
					for _, in := range ins {
						open(t, cache, in, step)
					}
				}
			}
		}
	})
}

// bumpTimes moves a file's mtime (and so its ctime) on, as a later edit would.
func bumpTimes(t testing.TB, path string) {
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	later := fi.ModTime().Add(1e9)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestOpenBlobChangedWhileIndexed: a blob whose file changes during the pass that proves it is refused
// and nothing is remembered of it, even when its bytes still hash right (the change may have been
// undone, or hit bytes the pass had already read).
func TestOpenBlobChangedWhileIndexed(t *testing.T) {
	t.Parallel()
	data, _ := trustTars(t)
	for name, blob := range map[string][]byte{"plain": data, "gzip": tartest.Gzip(t, data)} {
		t.Run(name, func(t *testing.T) {
			cache := t.TempDir()
			b := fileBlob(t, blob, 0)
			touched := false
			opts := Options{CacheDir: cache, Digest: sha(blob), DiffID: sha(data), Progress: func(Progress) {
				if !touched {
					touched = true
					bumpTimes(t, b.File.Name())
				}
			}}
			if _, err := Open(context.Background(), b, opts); !errors.Is(err, ErrBlobChanged) {
				t.Fatalf("blob changed while indexed: %v", err)
			}
			if m, _ := filepath.Glob(filepath.Join(cache, "verified", "*", "*")); len(m) != 0 {
				t.Errorf("records of a blob that changed: %v", m)
			}
			// Unchanged since: proven and remembered.
			opts.Progress = nil
			l, err := Open(context.Background(), b, opts)
			if err != nil {
				t.Fatal(err)
			}
			l.Close()
			if m, _ := filepath.Glob(filepath.Join(cache, "verified", "*", "*.json")); len(m) != 1 {
				t.Errorf("records %v", m)
			}
		})
	}
}

package compression

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

var testZstdEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))

// zstdFrames compresses every chunk of data of the given size as its own frame.
func zstdFrames(t testing.TB, data []byte, chunk int) []byte {
	t.Helper()
	var out []byte
	for len(data) > 0 {
		n := min(chunk, len(data))
		out = testZstdEncoder.EncodeAll(data[:n], out)
		data = data[n:]
	}
	return out
}

// zstdStreamed compresses data with the streaming encoder: one frame without a content size.
func zstdStreamed(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func skippable(payload string) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 0x184d2a5e)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestZstdStream(t *testing.T) {
	t.Parallel()
	const span = 64 << 10
	text := hexText(21, 1<<20+777)
	random := randomBytes(22, 600<<10)
	var chunked []byte // zstd:chunked-like: many small frames, then a skippable table of contents
	for i, rest := 0, text; len(rest) > 0; i++ {
		n := min(len(rest), []int{1000, 0, 3000, 50, 70000, 4096, 100000, 1}[i%8])
		chunked = testZstdEncoder.EncodeAll(rest[:n], chunked)
		rest = rest[n:]
	}
	chunked = append(chunked, skippable(strings.Repeat("toc", 1000))...)
	cases := []struct {
		name       string
		data, want []byte
		copy       bool
	}{
		{"frames", zstdFrames(t, text, 100000), text, false},
		{"small-frames", zstdFrames(t, text, 3000), text, false},
		{"random-frames", zstdFrames(t, random, 50000), random, false},
		{"chunked", chunked, text, false},
		{"skippable", concat(skippable("head"), zstdFrames(t, text[:300000], 70000), skippable(""),
			zstdFrames(t, text[300000:], 70000), skippable("tail")), text, false},
		{"empty-frames", concat(zstdFrames(t, nil, 1), testZstdEncoder.EncodeAll(nil, nil), zstdFrames(t, text, 200000),
			testZstdEncoder.EncodeAll(nil, nil)), text, false},
		{"one-small-frame", zstdFrames(t, text[:300000], 300000), text[:300000], false},
		{"single-frame", zstdFrames(t, text, len(text)), text, true},
		{"single-streamed", zstdStreamed(t, text), text, true},
		{"huge-and-small", concat(zstdFrames(t, text[:900000], 900000), zstdFrames(t, text[900000:], 1000)), text, true},
		{"only-skippable", skippable("nothing"), []byte{}, false},
		{"empty-frame", testZstdEncoder.EncodeAll(nil, nil), []byte{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := Detect(bytes.NewReader(tc.data), 0); got != Zstd {
				t.Fatalf("Detect = %v", got)
			}
			var logs bytes.Buffer
			opts := Options{SpanSize: span, HugeFrame: 512 << 10, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			s := indexStream(t, blobAt(tc.data), Zstd, opts, tc.want)
			if len(tc.want) > 0 {
				checkStream(t, s, tc.want)
			}
			_, isCopy := s.File()
			if isCopy != tc.copy {
				t.Errorf("decompressed copy = %v, want %v", isCopy, tc.copy)
			}
			if tc.copy != strings.Contains(logs.String(), "writing a decompressed copy") {
				t.Errorf("log: %s", logs.String())
			}
			if !tc.copy && tc.name != "one-small-frame" && len(tc.want) > 3*span && len(s.points) < 3 {
				t.Errorf("only %d restart points for %d bytes", len(s.points), len(tc.want))
			}
		})
	}
}

// TestZstdCopyLog checks that the decompressed copy of a one-frame zstd layer is announced at the
// default level (warnings), with its size before (from the frame header, when it says) and after.
func TestZstdCopyLog(t *testing.T) {
	t.Parallel()
	want := hexText(23, 200<<10)
	streamed := zstdStreamed(t, want)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	indexStream(t, blobAt(streamed), Zstd, Options{HugeFrame: 64 << 10, Logger: log}, want)
	if msg := "writing a decompressed copy of at most "; !strings.Contains(logs.String(), msg) ||
		!strings.Contains(logs.String(), "wrote a decompressed copy of 0.2 MiB of zstd layer") ||
		!strings.Contains(logs.String(), "bytes=204800") {
		t.Errorf("streamed frame: log = %q", logs.String())
	}
	logs.Reset()

	data := zstdFrames(t, want, len(want))
	opts := Options{HugeFrame: 64 << 10, CacheDir: t.TempDir(), Key: keyOf(data), Logger: log}
	s := indexStream(t, blobAt(data), Zstd, opts, want)
	raw, _, _ := cachePaths(opts, ".raw")
	for _, msg := range []string{
		`level=WARN msg="compression: zstd layer has no restart points (it is one frame): writing a decompressed copy of 0.2 MiB to the cache" layer=` +
			string(opts.Key) + " path=" + raw,
		`level=WARN msg="compression: wrote a decompressed copy of 0.2 MiB of zstd layer" layer=` + string(opts.Key) + " path=" + raw + " bytes=204800",
	} {
		if !strings.Contains(logs.String(), msg) {
			t.Errorf("log = %q, want %q", logs.String(), msg)
		}
	}
	f, ok := s.File()
	if !ok || s.FileOffset() != 0 {
		t.Fatalf("File() = %v, %v", f, ok)
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if rfi, err := os.Stat(raw); err != nil || !os.SameFile(fi, rfi) {
		t.Errorf("File() is not %s: %v", raw, err)
	}
	got, err := os.ReadFile(raw)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("decompressed copy: %v", err)
	}
}

func TestZstdFixtures(t *testing.T) {
	t.Parallel()
	want, err := os.ReadFile(filepath.Join("testdata", "stream", "plain.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"single.txt.zst", "concat.txt.zst"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "stream", name))
			if err != nil {
				t.Fatal(err)
			}
			s, err := Open(context.Background(), blobAt(data), Options{SpanSize: 8 << 10})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			checkStream(t, s, want)
		})
	}
}

func TestZstdDamaged(t *testing.T) {
	t.Parallel()
	want := hexText(24, 300<<10)
	good := zstdFrames(t, want, 100000)
	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 0x10; return b }
	cases := []struct {
		name string
		data []byte
		is   error
	}{
		{"garbage after", append(bytes.Clone(good), "garbage!!!!"...), errZstdFrame},
		{"zeros after", append(bytes.Clone(good), make([]byte, 512)...), errZstdFrame},
		{"partial magic after", append(bytes.Clone(good), 0x28, 0xb5), io.ErrUnexpectedEOF},
		{"reserved block type", flip(good, 6), nil},
		{"checksum", flip(good, len(good)-1), nil},
		{"data", flip(good, len(good)/2), nil},
		{"skippable too long", concat(good, binary.LittleEndian.AppendUint32([]byte{0x50, 0x2a, 0x4d, 0x18}, 100), []byte("x")), io.ErrUnexpectedEOF},
	}
	for _, n := range []int{1, 4, 5, 7, len(good) / 2, len(good) - 1} {
		cases = append(cases, struct {
			name string
			data []byte
			is   error
		}{"truncated", good[:n], io.ErrUnexpectedEOF})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ix, err := NewIndexer(context.Background(), blobAt(tc.data), Zstd, Options{})
			if err == nil {
				defer ix.Close()
				_, err = io.Copy(io.Discard, ix)
			}
			if err == nil {
				t.Fatalf("no error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want %v", err, tc.is)
			}
			t.Log(err)
		})
	}
}

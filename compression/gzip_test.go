package compression

import (
	"bytes"
	stdgzip "compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
)

// gzipBytes compresses data as one gzip member (klauspost, default level).
func gzipBytes(t testing.TB, data []byte) []byte {
	t.Helper()
	return gzipLevel(t, data, gzip.DefaultCompression, gzip.Header{})
}

func gzipLevel(t testing.TB, data []byte, level int, hdr gzip.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := gzip.NewWriterLevel(&buf, level)
	if err != nil {
		t.Fatal(err)
	}
	w.Header = hdr
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var gzipHeaderNamed = gzip.Header{Name: "layer.tar", Comment: "c", Extra: []byte("AB\x01\x00z")}

// stdGzip compresses with the standard library.
func stdGzip(t testing.TB, data []byte, level int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, _ := stdgzip.NewWriterLevel(&buf, level)
	w.Write(data)
	w.Close()
	return buf.Bytes()
}

// gzipMembers compresses each chunk as its own member and concatenates them.
func gzipMembers(t testing.TB, chunks ...[]byte) []byte {
	t.Helper()
	var out []byte
	for i, c := range chunks {
		out = append(out, gzipLevel(t, c, 1+i%9, gzip.Header{})...)
	}
	return out
}

// split cuts data at the given sizes (the rest is the last chunk).
func split(data []byte, sizes ...int) [][]byte {
	var out [][]byte
	for _, n := range sizes {
		n = min(n, len(data))
		out = append(out, data[:n])
		data = data[n:]
	}
	return append(out, data)
}

// gzipFHCRC writes a member with every optional header field, including the header CRC.
func gzipFHCRC(t testing.TB, data []byte, corruptHCRC bool) []byte {
	t.Helper()
	hdr := []byte{0x1f, 0x8b, 8, gzipFlagHCRC | gzipFlagExtra | gzipFlagName | gzipFlagComment, 1, 2, 3, 4, 0, 3}
	extra := []byte("SC\x04\x00abcd")
	hdr = binary.LittleEndian.AppendUint16(hdr, uint16(len(extra)))
	hdr = append(hdr, extra...)
	hdr = append(hdr, "file.tar\x00a comment\x00"...)
	crc := crc32.ChecksumIEEE(hdr)
	if corruptHCRC {
		crc++
	}
	hdr = binary.LittleEndian.AppendUint16(hdr, uint16(crc))
	var buf bytes.Buffer
	buf.Write(hdr)
	fw, _ := flate.NewWriter(&buf, 6)
	fw.Write(data)
	fw.Close()
	out := binary.LittleEndian.AppendUint32(buf.Bytes(), crc32.ChecksumIEEE(data))
	return binary.LittleEndian.AppendUint32(out, uint32(len(data)))
}

func TestGzipStream(t *testing.T) {
	t.Parallel()
	const span = 64 << 10
	text := hexText(11, 1<<20+12345)
	random := randomBytes(12, 700<<10)
	manySizes := make([]int, 150)
	for i := range manySizes {
		manySizes[i] = (i * 7919) % 9000 // includes empty members
	}
	cases := []struct {
		name       string
		data, want []byte
	}{
		{"default", gzipBytes(t, text), text},
		{"stdlib", stdGzip(t, text, stdgzip.DefaultCompression), text},
		{"best-speed", gzipLevel(t, text, gzip.BestSpeed, gzip.Header{}), text},
		{"best", gzipLevel(t, text, gzip.BestCompression, gzip.Header{}), text},
		{"huffman-only", gzipLevel(t, text, gzip.HuffmanOnly, gzip.Header{}), text},
		{"stored", stdGzip(t, text, stdgzip.NoCompression), text},
		{"random", gzipBytes(t, random), random},
		{"tiny", gzipBytes(t, text[:10]), text[:10]},
		{"header-fields", gzipLevel(t, text, 6, gzip.Header{Name: "layer.tar", Comment: "hi", Extra: []byte("SC\x02\x00xy")}), text},
		{"fhcrc", gzipFHCRC(t, text, false), text},
		{"members", gzipMembers(t, split(text, 100<<10, 1, 0, 300<<10, 64<<10)...), text},
		{"members-random", gzipMembers(t, split(random, 65536, 65537)...), random},
		{"small-members", gzipMembers(t, split(text, manySizes...)...), text},
		{"empty-members", gzipMembers(t, nil, text[:5000], nil, nil, text[5000:], nil), text},
		{"only-empty", gzipMembers(t, nil, nil), []byte{}},
		{"empty", gzipBytes(t, nil), []byte{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := Detect(bytes.NewReader(tc.data), 0); got != Gzip {
				t.Fatalf("Detect = %v", got)
			}
			s := indexStream(t, blobAt(tc.data), Gzip, Options{SpanSize: span}, tc.want)
			if s.Format() != Gzip {
				t.Errorf("Format = %v", s.Format())
			}
			if len(tc.want) > 0 {
				checkStream(t, s, tc.want)
			} else if n, err := s.ReadAt(make([]byte, 1), 0); n != 0 || err != io.EOF {
				t.Errorf("ReadAt on an empty stream = %d, %v", n, err)
			}
			if tc.name != "huffman-only" && len(tc.want) > 3*span && len(s.points) < 3 {
				t.Errorf("only %d restart points for %d bytes", len(s.points), len(tc.want))
			}
		})
	}
}

// TestGzipSpanBoundaries reads around every restart point.
func TestGzipSpanBoundaries(t *testing.T) {
	t.Parallel()
	want := hexText(13, 600<<10)
	s := indexStream(t, blobAt(gzipMembers(t, split(want, 200<<10, 100<<10)...)), Gzip, Options{SpanSize: 32 << 10}, want)
	if len(s.points) < 10 {
		t.Fatalf("%d points", len(s.points))
	}
	var sawBits bool
	buf := make([]byte, 5000)
	for _, p := range s.points {
		sawBits = sawBits || p.Bits != 0
		for _, off := range []int64{p.Out - 2500, p.Out - 1, p.Out, p.Out + 1} {
			if off >= 0 {
				checkReadAt(t, s, want, buf, off)
			}
		}
	}
	if !sawBits {
		t.Errorf("no restart point inside a byte")
	}
}

func TestGzipFixtures(t *testing.T) {
	t.Parallel()
	want, err := os.ReadFile(filepath.Join("testdata", "stream", "plain.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"fname.txt.gz", "concat.txt.gz", "pigz-independent.txt.gz"} {
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
			if name == "concat.txt.gz" {
				// GNU gzip ends a member with a final data block: the second member's start is a point.
				found := false
				for _, p := range s.points {
					found = found || (p.Flags&pointFlagMember != 0 && p.Out == 20000)
				}
				if !found {
					t.Errorf("no restart point at the second member: %+v", s.points)
				}
			}
		})
	}
}

func TestGzipDamaged(t *testing.T) {
	t.Parallel()
	want := hexText(14, 300<<10)
	good := gzipMembers(t, split(want, 100<<10)...)
	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 0x10; return b }
	cases := []struct {
		name string
		data []byte
		is   error
	}{
		{"empty blob", nil, errGzipEmpty},
		{"crc", flip(good, len(good)-8), errGzipChecksum},
		{"isize", flip(good, len(good)-1), errGzipChecksum},
		{"fhcrc", gzipFHCRC(t, want, true), errGzipHeader},
		{"garbage after", append(bytes.Clone(good), "garbage!!!!"...), errGzipHeader},
		{"zeros after", append(bytes.Clone(good), make([]byte, 512)...), errGzipHeader},
		{"partial header after", append(bytes.Clone(good), 0x1f, 0x8b), io.ErrUnexpectedEOF},
		{"bad method", flip(good, 2), errGzipHeader},
		{"data", flip(good, len(good)/2), nil},
		{"data early", flip(good, 30), nil},
	}
	for _, n := range []int{1, 5, 10, 11, 100, len(good) / 2, len(good) - 9, len(good) - 8, len(good) - 1} {
		cases = append(cases, struct {
			name string
			data []byte
			is   error
		}{"truncated", good[:n], io.ErrUnexpectedEOF})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ix, err := NewIndexer(context.Background(), blobAt(tc.data), Gzip, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer ix.Close()
			_, err = io.Copy(io.Discard, ix)
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

// TestGzipCursorReuse checks that sequential reads continue a live decoder instead of restarting
// from a restart point every time.
func TestCursorReuse(t *testing.T) {
	t.Parallel()
	want := hexText(15, 2<<20)
	t.Run("gzip", func(t *testing.T) {
		testCursorReuse(t, indexStream(t, blobAt(gzipBytes(t, want)), Gzip, Options{SpanSize: 256 << 10}, want))
	})
	t.Run("zstd", func(t *testing.T) {
		testCursorReuse(t, indexStream(t, blobAt(zstdFrames(t, want, 10000)), Zstd, Options{SpanSize: 256 << 10}, want))
	})
}

func testCursorReuse(t *testing.T, s *Stream) {
	if len(s.points) < 5 {
		t.Fatalf("%d points", len(s.points))
	}
	resets := 0
	inner := s.newCursor
	s.newCursor = func() cursor { return &countingCursor{cursor: inner(), resets: &resets} }
	buf := make([]byte, 128<<10)
	for off := int64(0); off < s.Size(); off += int64(len(buf)) {
		if _, err := s.ReadAt(buf, off); err != nil && err != io.EOF {
			t.Fatal(err)
		}
	}
	if resets != 1 {
		t.Errorf("%d resets for one sequential pass, want 1", resets)
	}
	// Two interleaved sequential readers keep a cursor each.
	resets = 0
	for off := int64(0); off < s.Size()/2; off += int64(len(buf)) {
		s.ReadAt(buf, off)
		s.ReadAt(buf, off+s.Size()/2)
	}
	if resets > 2 {
		t.Errorf("%d resets for two interleaved readers, want at most 2", resets)
	}
}

type countingCursor struct {
	cursor
	resets *int
}

func (c *countingCursor) reset(pt *point) error {
	*c.resets++
	return c.cursor.reset(pt)
}

// TestGzipDeflatedWindows checks that restart windows of compressible data are stored deflated (and
// smaller), those of incompressible data as they are, that reads from both kinds of point are exact,
// and that a damaged deflated window is an error, not wrong data.
func TestGzipDeflatedWindows(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		data     []byte
		deflated bool
	}{
		{"hex text", hexText(7, 2<<20), true},
		{"random bytes", randomBytes(7, 3<<20), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gz := gzipBytes(t, tc.data)
			s := indexStream(t, blobAt(gz), Gzip, Options{SpanSize: 64 << 10}, tc.data)
			windows, deflated := 0, 0
			for _, p := range s.points {
				if p.WinLen == 0 {
					continue
				}
				windows++
				if p.Flags&pointFlagDeflated != 0 {
					deflated++
					if p.WinLen >= windowSize {
						t.Errorf("deflated window of %d bytes", p.WinLen)
					}
				}
			}
			if windows < 10 {
				t.Fatalf("%d windows, want many at a 64 KiB span", windows)
			}
			if tc.deflated && deflated != windows || !tc.deflated && deflated != 0 {
				t.Errorf("%d of %d windows deflated", deflated, windows)
			}
			checkStream(t, s, tc.data)
			if !tc.deflated {
				return
			}
			// Damage a deflated window (and fix its CRC so that only the inflate can notice).
			var p *point
			for i := range s.points {
				if s.points[i].Flags&pointFlagDeflated != 0 {
					p = &s.points[i]
					break
				}
			}
			bad := make([]byte, p.WinLen)
			for i := range bad {
				bad[i] = 0xff
			}
			if _, err := s.ckpt.WriteAt(bad, p.WinOff); err != nil {
				t.Fatal(err)
			}
			p.WinCRC = crc32.Checksum(bad, castagnoli)
			s.idle = nil
			buf := make([]byte, 4096)
			if _, err := s.ReadAt(buf, p.Out+10); err == nil {
				t.Errorf("read through a damaged deflated window succeeded")
			}
		})
	}
}

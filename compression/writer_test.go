package compression

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// compressible is n bytes of compressible, not trivially repetitive text.
func compressible(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "line %d %x\n", i, i*2654435761)
	}
	return b.Bytes()[:n]
}

// compressBlocks runs input through a blockWriter, writing it in random-sized pieces.
func compressBlocks(t testing.TB, c Format, workers int, input []byte, seed uint64) []byte {
	t.Helper()
	enc, size := newEncoder(c, workers)
	var out bytes.Buffer
	w := newBlockWriter(context.Background(), &out, enc, size, workers)
	r := rand.New(rand.NewPCG(seed, 1))
	for p := input; len(p) > 0; {
		n := min(len(p), 1+r.IntN(300<<10))
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func decompress(t testing.TB, c Format, b []byte) []byte {
	t.Helper()
	var r io.Reader
	switch c {
	case Gzip:
		zr, err := gzip.NewReader(bytes.NewReader(b)) // the standard library's: multistream by default
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case Zstd:
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBlockWriter(t *testing.T) {
	t.Parallel()
	text := compressible(11 << 20)
	for _, c := range []Format{Gzip, Zstd} {
		_, block := newEncoder(c, 1)
		for _, n := range []int{0, 1, block - 1, block, block + 1, 2*block + block/2} {
			t.Run(fmt.Sprintf("%s/%d", c, n), func(t *testing.T) {
				in := text[:n]
				one := compressBlocks(t, c, 1, in, 1)
				four := compressBlocks(t, c, 4, in, 2)
				if !bytes.Equal(one, four) {
					t.Fatalf("1 and 4 workers give different streams (%d and %d bytes)", len(one), len(four))
				}
				if got := decompress(t, c, one); !bytes.Equal(got, in) {
					t.Fatalf("round trip gives %d bytes, want %d", len(got), len(in))
				}
				if det, err := Detect(bytes.NewReader(one), 0); err != nil || det != c {
					t.Errorf("detected as %v, %v", det, err)
				}
				if c == Gzip && (one[3] != 0 || !bytes.Equal(one[4:8], []byte{0, 0, 0, 0})) {
					t.Errorf("gzip header flags %#x mtime % x, want none and zero", one[3], one[4:8])
				}
			})
		}
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n--; w.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestBlockWriterErrors(t *testing.T) {
	t.Parallel()
	in := compressible(6 << 20)
	enc, size := newEncoder(Gzip, 2)
	w := newBlockWriter(context.Background(), &failWriter{n: 1}, enc, size, 2)
	_, werr := w.Write(in)
	cerr := w.Close()
	if werr == nil && cerr == nil || cerr == nil || cerr.Error() != "disk full" {
		t.Fatalf("write error %v, close error %v; want disk full", werr, cerr)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w = newBlockWriter(ctx, io.Discard, enc, size, 1)
	var err error
	for i := 0; i < 20 && err == nil; i++ {
		_, err = w.Write(in)
	}
	w.abort()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("write after cancel: %v", err)
	}
}

func TestWriterRoundTrip(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("imgfs export stream 0123456789abcdef\n"), 100_000)
	for _, c := range []Format{Gzip, Zstd} {
		var out bytes.Buffer
		cw, err := NewWriter(context.Background(), &out, c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cw.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := cw.Close(); err != nil {
			t.Fatal(err)
		}
		var r io.Reader
		switch c {
		case Gzip:
			zr, err := gzip.NewReader(&out)
			if err != nil {
				t.Fatal(err)
			}
			r = zr
		case Zstd:
			zr, err := zstd.NewReader(&out)
			if err != nil {
				t.Fatal(err)
			}
			defer zr.Close()
			r = zr
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%v: round trip: %d bytes, %v", c, len(got), err)
		}
	}
	if _, err := NewWriter(context.Background(), io.Discard, None); err == nil {
		t.Error("NewWriter(none) succeeded")
	}
}

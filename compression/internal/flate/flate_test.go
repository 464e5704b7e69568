package flate

import (
	"bufio"
	"bytes"
	stdflate "compress/flate"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	kflate "github.com/klauspost/compress/flate"
)

type blockEnd struct {
	BlockEnd
	window []byte
}

// decodeAll decodes a raw DEFLATE stream, recording every block end with its window.
func decodeAll(t testing.TB, data []byte) ([]byte, []blockEnd, error) {
	t.Helper()
	f := NewReader()
	var ends []blockEnd
	f.SetBlockHook(func(b BlockEnd) {
		ends = append(ends, blockEnd{b, f.AppendWindow(nil)})
	})
	f.Reset(bufio.NewReader(bytes.NewReader(data)))
	out, err := io.ReadAll(f)
	return out, ends, err
}

func sample(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 3))
	b := make([]byte, n)
	for i := range b {
		switch {
		case i%5000 < 1200: // incompressible stretches make encoders emit stored blocks
			b[i] = byte(r.Uint32())
		case i%64 == 63:
			b[i] = '\n'
		default:
			b[i] = "0123456789abcdef"[r.IntN(16)]
		}
	}
	return b
}

func streams(t testing.TB, data []byte) map[string][]byte {
	out := map[string][]byte{}
	for _, level := range []int{-2, 0, 1, 4, 6, 9} {
		var buf bytes.Buffer
		w, err := kflate.NewWriter(&buf, level)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(data); i += 70000 {
			w.Write(data[i:min(i+70000, len(data))])
			if i%3 == 0 {
				w.Flush() // an empty stored block, as pigz and sync flushes write
			}
		}
		w.Close()
		out["klauspost-"+string(rune('0'+level+2))] = buf.Bytes()
	}
	for _, level := range []int{0, 1, 9, stdflate.HuffmanOnly} {
		var buf bytes.Buffer
		w, _ := stdflate.NewWriter(&buf, level)
		w.Write(data)
		w.Close()
		out["std-"+string(rune('0'+level+2))] = buf.Bytes()
	}
	return out
}

func TestResumeEveryBlock(t *testing.T) {
	data := sample(1, 600<<10)
	for name, comp := range streams(t, data) {
		t.Run(name, func(t *testing.T) {
			got, ends, err := decodeAll(t, comp)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("decode: %v (equal %v)", err, bytes.Equal(got, data))
			}
			if len(ends) == 0 || !ends[len(ends)-1].Final {
				t.Fatalf("no final block end among %d", len(ends))
			}
			f := NewReader()
			var inner []BlockEnd
			f.SetBlockHook(func(b BlockEnd) { inner = append(inner, b) })
			for i, e := range ends[:len(ends)-1] {
				inner = inner[:0]
				if err := f.Resume(bufio.NewReader(bytes.NewReader(comp[e.In:])), e.Bits, e.window); err != nil {
					t.Fatalf("block %d: Resume: %v", i, err)
				}
				rest, err := io.ReadAll(f)
				if err != nil || !bytes.Equal(rest, data[e.Out:]) {
					t.Fatalf("block %d (in %d bit %d out %d): %v, equal %v", i, e.In, e.Bits, e.Out, err, bytes.Equal(rest, data[e.Out:]))
				}
				// Offsets after a resume are relative to it.
				if next := ends[i+1]; len(inner) == 0 || inner[0].In+e.In != next.In || inner[0].Out+e.Out != next.Out || inner[0].Bits != next.Bits {
					t.Fatalf("block %d: next end %+v after resume, want %+v", i, inner, next.BlockEnd)
				}
			}
		})
	}
}

// TestTrailerAfterStream checks that nothing past the end of the stream is consumed.
func TestTrailerAfterStream(t *testing.T) {
	data := sample(2, 100000)
	for name, comp := range streams(t, data) {
		br := bufio.NewReader(bytes.NewReader(append(bytes.Clone(comp), "TRAILER"...)))
		f := NewReader()
		f.Reset(br)
		if got, err := io.ReadAll(f); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: %v", name, err)
		}
		if rest, _ := io.ReadAll(br); string(rest) != "TRAILER" {
			t.Errorf("%s: after the stream: %q", name, rest)
		}
	}
}

func TestCorrupt(t *testing.T) {
	data := sample(3, 50000)
	comp := streams(t, data)["klauspost-8"]
	for _, n := range []int{0, 1, 2, len(comp) / 2, len(comp) - 1} {
		if _, _, err := decodeAll(t, comp[:n]); err != io.ErrUnexpectedEOF {
			t.Errorf("truncated at %d: %v", n, err)
		}
	}
	if _, _, err := decodeAll(t, []byte{0x07, 0, 0}); err == nil { // reserved block type
		t.Errorf("reserved block type: no error")
	}
	if err := NewReader().Resume(bufio.NewReader(bytes.NewReader(comp)), 8, nil); err == nil {
		t.Errorf("Resume with 8 bits: no error")
	}
}

// FuzzReader compares the decoder with the standard library's and checks resuming at the first block end.
func FuzzReader(f *testing.F) {
	for _, comp := range streams(f, sample(4, 3000)) {
		f.Add(comp)
	}
	f.Add([]byte{0x01, 0x00, 0x00, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, comp []byte) {
		want, wantErr := io.ReadAll(io.LimitReader(stdflate.NewReader(bytes.NewReader(comp)), 1<<24))
		got, ends, err := decodeAll(t, comp)
		if wantErr == nil && len(want) < 1<<24 {
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("standard library accepts, we: %v, equal %v", err, bytes.Equal(got, want))
			}
			if len(ends) > 1 {
				e := ends[0]
				r := NewReader()
				if err := r.Resume(bufio.NewReader(bytes.NewReader(comp[e.In:])), e.Bits, e.window); err != nil {
					t.Fatal(err)
				}
				if rest, err := io.ReadAll(r); err != nil || !bytes.Equal(rest, want[e.Out:]) {
					t.Fatalf("resume: %v", err)
				}
			}
		}
	})
}

var benchComp = sync.OnceValues(func() ([]byte, int) {
	data := sample(5, 32<<20)
	var buf bytes.Buffer
	w, _ := kflate.NewWriter(&buf, 6)
	w.Write(data)
	w.Close()
	return buf.Bytes(), len(data)
})

// BenchmarkReader measures this package; BenchmarkReaderKlauspost and BenchmarkReaderStdlib decode the
// same stream from the same bufio.Reader with the upstream packages.
func BenchmarkReader(b *testing.B) {
	comp, n := benchComp()
	f := NewReader()
	ends := 0
	f.SetBlockHook(func(BlockEnd) { ends++ })
	br := bufio.NewReaderSize(nil, 256<<10)
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		br.Reset(bytes.NewReader(comp))
		f.Reset(br)
		io.Copy(io.Discard, f)
	}
}

func BenchmarkReaderKlauspost(b *testing.B) {
	comp, n := benchComp()
	br := bufio.NewReaderSize(nil, 256<<10)
	f := kflate.NewReader(br)
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		br.Reset(bytes.NewReader(comp))
		f.(kflate.Resetter).Reset(br, nil)
		io.Copy(io.Discard, f)
	}
}

func BenchmarkReaderStdlib(b *testing.B) {
	comp, n := benchComp()
	br := bufio.NewReaderSize(nil, 256<<10)
	f := stdflate.NewReader(br)
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		br.Reset(bytes.NewReader(comp))
		f.(stdflate.Resetter).Reset(br, nil)
		io.Copy(io.Discard, f)
	}
}

package compression

import (
	"bytes"
	stdgzip "compress/gzip"
	"context"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// benchData is 64 MiB of hex digits (about 4 bits of entropy per byte, so inflate really works),
// compressed as one gzip member and as zstd frames of 1 MiB.
var benchData = sync.OnceValue(func() benchSet {
	plain := hexText(99, 64<<20)
	var zst []byte
	var buf bytes.Buffer
	w, _ := kgzip.NewWriterLevel(&buf, kgzip.DefaultCompression)
	w.Write(plain)
	w.Close()
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(2))
	for i := 0; i < len(plain); i += 1 << 20 {
		zst = enc.EncodeAll(plain[i:i+1<<20], zst)
	}
	return benchSet{plain, buf.Bytes(), zst}
})

type benchSet struct{ plain, gz, zst []byte }

func benchBlob(b []byte) Blob { return Blob{R: bytes.NewReader(b), Size: int64(len(b))} }

func BenchmarkGzipDecodeStdlib(b *testing.B) {
	d := benchData()
	plain, gz := d.plain, d.gz
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		r, _ := stdgzip.NewReader(bytes.NewReader(gz))
		io.Copy(io.Discard, r)
	}
}

func BenchmarkGzipDecodeKlauspost(b *testing.B) {
	d := benchData()
	plain, gz := d.plain, d.gz
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		r, _ := kgzip.NewReader(bytes.NewReader(gz))
		io.Copy(io.Discard, r)
	}
}

// BenchmarkGzipIndex is the indexing pass: inflate, CRC-32, sha256 and restart points.
func BenchmarkGzipIndex(b *testing.B) {
	d := benchData()
	plain, gz := d.plain, d.gz
	benchIndex(b, gz, Gzip, len(plain))
}

func BenchmarkZstdDecode(b *testing.B) {
	d := benchData()
	plain, zst := d.plain, d.zst
	dec, _ := newZstdDecoder()
	defer dec.Close()
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		dec.Reset(bytes.NewReader(zst))
		io.Copy(io.Discard, dec)
	}
}

func BenchmarkZstdIndex(b *testing.B) {
	d := benchData()
	plain, zst := d.plain, d.zst
	benchIndex(b, zst, Zstd, len(plain))
}

func benchIndex(b *testing.B, data []byte, c Format, size int) {
	b.SetBytes(int64(size))
	b.ReportAllocs()
	buf := make([]byte, 256<<10)
	for b.Loop() {
		ix, err := NewIndexer(context.Background(), benchBlob(data), c, Options{})
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, err := ix.Read(buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		s, err := ix.Finish()
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
		ix.Close()
	}
}

func benchStream(b *testing.B, c Format) *Stream {
	d := benchData()
	gz, zst := d.gz, d.zst
	data := gz
	if c == Zstd {
		data = zst
	}
	s, err := Open(context.Background(), benchBlob(data), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkGzipReadAtSequential reads the whole stream through ReadAt in 128 KiB requests, as FUSE does.
func BenchmarkGzipReadAtSequential(b *testing.B) { benchSequential(b, Gzip) }
func BenchmarkZstdReadAtSequential(b *testing.B) { benchSequential(b, Zstd) }

func benchSequential(b *testing.B, c Format) {
	s := benchStream(b, c)
	buf := make([]byte, 128<<10)
	b.SetBytes(s.Size())
	b.ReportAllocs()
	for b.Loop() {
		for off := int64(0); off < s.Size(); off += int64(len(buf)) {
			if _, err := s.ReadAt(buf, off); err != nil && err != io.EOF {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkGzipReadAtRandom reads 4 KiB at random offsets: each read decodes on average half a span.
func BenchmarkGzipReadAtRandom(b *testing.B) { benchRandom(b, Gzip) }
func BenchmarkZstdReadAtRandom(b *testing.B) { benchRandom(b, Zstd) }

func benchRandom(b *testing.B, c Format) {
	s := benchStream(b, c)
	buf := make([]byte, 4<<10)
	r := rand.New(rand.NewPCG(1, 2))
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.ReadAt(buf, r.Int64N(s.Size()-int64(len(buf)))); err != nil {
			b.Fatal(err)
		}
	}
}

// benchMembers is 16 MiB of hex text in 50,000 gzip members, as eStargz writes one or more per file.
var benchMembers = sync.OnceValue(func() benchSet {
	plain := hexText(98, 16<<20)
	var gz []byte
	var buf bytes.Buffer
	w, _ := kgzip.NewWriterLevel(&buf, kgzip.BestSpeed)
	for i := 0; i < len(plain); i += 336 {
		buf.Reset()
		w.Reset(&buf)
		w.Write(plain[i:min(i+336, len(plain))])
		w.Close()
		gz = append(gz, buf.Bytes()...)
	}
	return benchSet{plain: plain, gz: gz}
})

func BenchmarkGzipMembersDecodeStdlib(b *testing.B) {
	d := benchMembers()
	b.SetBytes(int64(len(d.plain)))
	b.ReportAllocs()
	for b.Loop() {
		r, _ := stdgzip.NewReader(bytes.NewReader(d.gz))
		io.Copy(io.Discard, r)
	}
}

func BenchmarkGzipMembersIndex(b *testing.B) {
	d := benchMembers()
	benchIndex(b, d.gz, Gzip, len(d.plain))
}

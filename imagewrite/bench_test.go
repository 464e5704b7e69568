package imagewrite

import (
	"context"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/imgfs/imgfs/compression"
)

var hexText = sync.OnceValue(func() []byte {
	// 256 MiB of random hex digits in lines of 64: 4 bits of entropy a byte, as in a dump or a log.
	const size = 256 << 20
	b := make([]byte, size)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		if i%65 == 64 {
			b[i] = '\n'
		} else {
			b[i] = "0123456789abcdef"[r.IntN(16)]
		}
	}
	return b
})

// countWriter counts what it is given.
type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

func benchCompress(b *testing.B, fn func(in []byte, w io.Writer) error) {
	in := hexText()
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	b.ResetTimer()
	var out countWriter
	for b.Loop() {
		out.n = 0
		if err := fn(in, &out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(out.n)/float64(len(in)), "ratio")
}

// writeBlocks writes in through this package's parallel block compressor.
func writeBlocks(c compression.Format) func(in []byte, w io.Writer) error {
	return func(in []byte, w io.Writer) error {
		bw, err := compression.NewWriter(context.Background(), w, c)
		if err != nil {
			return err
		}
		for p := in; len(p) > 0; p = p[min(len(p), 256<<10):] {
			if _, err := bw.Write(p[:min(len(p), 256<<10)]); err != nil {
				return err
			}
		}
		return bw.Close()
	}
}

func BenchmarkGzip(b *testing.B) {
	b.Run("parallel-blocks", func(b *testing.B) { benchCompress(b, writeBlocks(compression.Gzip)) })
	b.Run("single-klauspost", func(b *testing.B) {
		benchCompress(b, func(in []byte, w io.Writer) error {
			zw, _ := gzip.NewWriterLevel(w, gzip.DefaultCompression)
			if _, err := zw.Write(in); err != nil {
				return err
			}
			return zw.Close()
		})
	})
}

func BenchmarkZstd(b *testing.B) {
	b.Run("parallel-frames", func(b *testing.B) { benchCompress(b, writeBlocks(compression.Zstd)) })
	streams := []struct {
		name string
		opts []zstd.EOption
	}{
		{"stream-concurrency-1", []zstd.EOption{zstd.WithEncoderConcurrency(1)}},
		{"stream-concurrency-GOMAXPROCS", []zstd.EOption{zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0))}},
		{"stream-concurrent-blocks", []zstd.EOption{zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithConcurrentBlocks(true)}},
	}
	for _, s := range streams {
		b.Run(s.name, func(b *testing.B) {
			benchCompress(b, func(in []byte, w io.Writer) error {
				zw, err := zstd.NewWriter(w, s.opts...)
				if err != nil {
					return err
				}
				if _, err := zw.Write(in); err != nil {
					return err
				}
				return zw.Close()
			})
		})
	}
}

package index

import (
	"bytes"
	"context"
	"crypto/sha256"
	"math/rand/v2"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/imgfs/imgfs/compression"
	"github.com/imgfs/imgfs/internal/tartest"
)

// benchBlob is a one-member layer of n bytes of hex digits (4 bits of entropy a byte, as the corpus's
// big-4g file), stored plain or gzip.
func benchBlob(b *testing.B, n int, gz bool) []byte {
	b.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	body := make([]byte, n)
	for i := range body {
		body[i] = "0123456789abcdef"[r.IntN(16)]
	}
	t := tartest.Tar(b, tartest.Member{Name: "blob", Body: body})
	if gz {
		return tartest.Gzip(b, t)
	}
	return t
}

// BenchmarkProveWarm is the verify of an indexed layer: Prove with a verified record in the cache, so
// the pass only hashes the blob and its uncompressed stream. BenchmarkSHA256 is the baseline: one
// sha256 over the same blob.
func BenchmarkProveWarm(b *testing.B) {
	for _, tc := range []struct {
		name string
		gz   bool
	}{{"plain", false}, {"gzip", true}} {
		b.Run(tc.name, func(b *testing.B) {
			blob := benchBlob(b, 64<<20, tc.gz)
			plain, _ := decompress(blob)
			f := fileBlob(b, blob, 0)
			opts := Options{CacheDir: b.TempDir(), Digest: digest.FromBytes(blob), DiffID: digest.FromBytes(plain)}
			l, p, err := Prove(context.Background(), f, opts)
			if err != nil {
				b.Fatal(err)
			}
			l.Close()
			b.SetBytes(int64(len(blob)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				l, p, err = Prove(context.Background(), f, opts)
				if err != nil || p.Indexed {
					b.Fatal(err, p)
				}
				l.Close()
			}
		})
	}
}

func BenchmarkSHA256(b *testing.B) {
	blob := benchBlob(b, 64<<20, false)
	b.SetBytes(int64(len(blob)))
	for b.Loop() {
		sha256.Sum256(blob)
	}
}

// BenchmarkHashPassGzip is hashPass alone over an in-memory gzip blob.
func BenchmarkHashPassGzip(b *testing.B) {
	blob := benchBlob(b, 64<<20, true)
	b.SetBytes(int64(len(blob)))
	for b.Loop() {
		if _, _, err := hashPass(context.Background(), Blob{R: bytes.NewReader(blob), Size: int64(len(blob))}, compression.Gzip, func(int64) {}); err != nil {
			b.Fatal(err)
		}
	}
}

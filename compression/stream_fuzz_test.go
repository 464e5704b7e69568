package compression

import (
	"bytes"
	stdgzip "compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
)

const fuzzMaxOutput = 4 << 20

// fuzzStream indexes data, compares the output with the reference decoder's when that one accepts the
// input, and then compares random reads.
func fuzzStream(t *testing.T, data []byte, c Format, opts Options, want []byte, refErr error) {
	ix, err := NewIndexer(context.Background(), blobAt(data), c, opts)
	if err != nil {
		if refErr == nil {
			t.Fatalf("reference accepts, NewIndexer: %v", err)
		}
		return
	}
	defer ix.Close()
	got, err := io.ReadAll(io.LimitReader(ix, fuzzMaxOutput+1))
	if refErr != nil || len(want) > fuzzMaxOutput {
		return
	}
	if err != nil {
		t.Fatalf("reference accepts, we: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("output differs from the reference: %d bytes, want %d", len(got), len(want))
	}
	s, err := ix.Finish()
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	defer s.Close()
	if s.Size() != int64(len(want)) {
		t.Fatalf("Size = %d, want %d", s.Size(), len(want))
	}
	buf := make([]byte, 3000)
	for i := int64(0); i < 12; i++ {
		off := (i * 7919 * int64(len(data)+1)) % (int64(len(want)) + 1)
		checkReadAt(t, s, want, buf[:int(i*331)%len(buf)], off)
	}
}

func addFixtures(f *testing.F, pattern string) {
	names, _ := filepath.Glob(filepath.Join("testdata", "stream", pattern))
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzGzipStream checks that no input makes the gzip indexer or reader panic, and that whatever the
// standard library decodes, we decode the same.
func FuzzGzipStream(f *testing.F) {
	addFixtures(f, "*.gz")
	text := hexText(31, 5000)
	f.Add(gzipBytes(f, text))
	f.Add(gzipMembers(f, split(text, 1000, 0, 2000)...))
	f.Add(gzipFHCRC(f, text[:100], false))
	f.Add(gzipLevel(f, text[:300], 0, gzipHeaderNamed))
	f.Add(stdGzip(f, text, stdgzip.HuffmanOnly))
	f.Fuzz(func(t *testing.T, data []byte) {
		var want []byte
		r, refErr := stdgzip.NewReader(bytes.NewReader(data))
		if refErr == nil {
			want, refErr = io.ReadAll(io.LimitReader(r, fuzzMaxOutput+1))
		}
		fuzzStream(t, data, Gzip, Options{SpanSize: 1 << 10}, want, refErr)
	})
}

// FuzzZstdStream checks that no input makes the zstd indexer or reader panic, and that whatever
// klauspost/compress/zstd decodes (with the same limits), we decode the same, in segments or from a copy.
func FuzzZstdStream(f *testing.F) {
	addFixtures(f, "*.zst")
	text := hexText(32, 20000)
	f.Add(zstdFrames(f, text, 3000))
	f.Add(zstdFrames(f, text, len(text)))
	f.Add(zstdStreamed(f, text[:500]))
	f.Add(concat(skippable("x"), zstdFrames(f, text[:2000], 500), skippable("")))
	f.Add(testZstdEncoder.EncodeAll(nil, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		dec, err := zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			t.Fatal(err)
		}
		defer dec.Close()
		want, refErr := io.ReadAll(io.LimitReader(dec, fuzzMaxOutput+1))
		fuzzStream(t, data, Zstd, Options{SpanSize: 1 << 10, HugeFrame: 8 << 10}, want, refErr)
	})
}

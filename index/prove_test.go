package index

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/imgfs/imgfs/compression"
	"github.com/imgfs/imgfs/internal/tartest"
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.ReaderAt
	n atomic.Int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// TestProve proves plain, gzip and zstd layers: the first pass builds the table and writes the
// record (a later Open loads it); a second Prove of the same bytes loads the table yet reads every
// byte of the blob again; bytes that differ from the proven ones behind an unchanged identity (what
// Open would trust) are caught by Prove, which reports what they hash to.
func TestProve(t *testing.T) {
	data := sampleTar(t)
	for _, tc := range []struct {
		name string
		blob []byte
	}{
		{"plain", data},
		{"gzip", tartest.Gzip(t, data)},
		{"zstd", tartest.Zstd(t, data)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache := t.TempDir()
			opts := Options{CacheDir: cache, DiffID: sha(data), Digest: sha(tc.blob)}
			blob := fileBlob(t, tc.blob, 7)
			cr := &countingReader{r: blob.R}
			blob.R = cr

			l, p, err := Prove(context.Background(), blob, opts)
			if err != nil {
				t.Fatal(err)
			}
			checkContent(t, l)
			l.Close()
			if !p.Indexed || p.Digest != sha(tc.blob) || p.DiffID != sha(data) {
				t.Errorf("first proof %+v", p)
			}

			log, logs := logBuffer()
			o := opts
			o.Logger = log
			l, err = Open(context.Background(), blob, o)
			if err != nil {
				t.Fatal(err)
			}
			l.Close()
			if !strings.Contains(logs.String(), "loaded table") {
				t.Errorf("Open after Prove did not use the record:\n%s", logs)
			}

			before := cr.n.Load()
			l, p, err = Prove(context.Background(), blob, opts)
			if err != nil {
				t.Fatal(err)
			}
			checkContent(t, l)
			l.Close()
			if p.Indexed || p.Digest != sha(tc.blob) || p.DiffID != sha(data) {
				t.Errorf("second proof %+v", p)
			}
			if read := cr.n.Load() - before; read < int64(len(tc.blob)) {
				t.Errorf("second proof read %d bytes of a %d-byte blob", read, len(tc.blob))
			}

			// Other bytes behind the identity the record names (a forged ctime, say): Open trusts
			// the record, Prove does not, and says what they hash to.
			b := append(make([]byte, 7), tc.blob...)
			b[7+len(tc.blob)/2] ^= 1
			forged := blob
			forged.R = bytes.NewReader(b)
			_, p, err = Prove(context.Background(), forged, opts)
			if err == nil {
				t.Fatal("Prove accepted other bytes")
			}
			if tc.name == "plain" && !errors.Is(err, ErrDiffIDMismatch) {
				t.Errorf("error %v, want a diff ID mismatch", err)
			}
			if p.Indexed || p.Digest != sha(b[7:]) {
				t.Errorf("proof of other bytes %+v, want digest %s", p, sha(b[7:]))
			}
		})
	}
}

// TestProveDamaged proves blobs whose claims are broken, with an empty cache: the error says which
// claim, the Proof what the bytes are, and nothing is left in the cache.
func TestProveDamaged(t *testing.T) {
	data := sampleTar(t)
	gz := tartest.Gzip(t, data)
	flip := func(b []byte, i int) []byte {
		c := append([]byte(nil), b...)
		c[i] ^= 0x40
		return c
	}
	badGz := flip(gz, len(gz)/2) // the deflate data or its CRC no longer check
	badTar := flip(data, 1024)   // a member's data: the tar scans, the digest breaks
	for _, tc := range []struct {
		name           string
		blob           []byte
		digest, diffID digest.Digest
		kind           error
		wantDiffID     bool // the uncompressed stream decodes, so its digest is known
	}{
		{"gzip byte flipped", badGz, sha(gz), sha(data), ErrDigestMismatch, false},
		{"plain byte flipped", badTar, sha(data), sha(data), ErrDiffIDMismatch, true},
		{"gzip claiming another diff_id", gz, sha(gz), sha(badTar), ErrDiffIDMismatch, true},
		{"gzip claiming another digest", gz, sha(badGz), sha(data), ErrDigestMismatch, true},
		{"plain truncated", data[:len(data)-1500], sha(data), sha(data), ErrDiffIDMismatch, true},
		{"plain with a digest other than its diff_id", data, sha(data), sha(badTar), ErrDiffIDMismatch, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache := t.TempDir()
			_, p, err := Prove(context.Background(), fileBlob(t, tc.blob, 3), Options{CacheDir: cache, Digest: tc.digest, DiffID: tc.diffID})
			if err == nil {
				t.Fatal("proved")
			}
			t.Log(err)
			if !errors.Is(err, tc.kind) {
				t.Errorf("error %v, want %v", err, tc.kind)
			}
			if p.Digest != sha(tc.blob) {
				t.Errorf("proof digest %s, want %s", p.Digest, sha(tc.blob))
			}
			if got := p.DiffID != ""; got != tc.wantDiffID {
				t.Errorf("proof diff_id %q", p.DiffID)
			}
			if tc.wantDiffID {
				want, _ := decompress(tc.blob)
				if p.DiffID != sha(want) {
					t.Errorf("proof diff_id %s, want %s", p.DiffID, sha(want))
				}
			}
			if p.Compression != compression.Gzip && strings.HasPrefix(tc.name, "gzip") {
				t.Errorf("compression %v", p.Compression)
			}
			if files := tableFiles(t, cache); len(files) != 0 {
				t.Errorf("cache holds %v", files)
			}
		})
	}
}

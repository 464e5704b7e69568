package index

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/imgfs/imgfs/compression"
	"github.com/opencontainers/go-digest"

	"github.com/imgfs/imgfs/internal/atomicfile"
)

// What the cache trusts, and why.
//
// A layer is a claim: a blob digest (from the manifest), a diff_id (from the config) and bytes. Open
// proves the claim in its one pass over the blob: the blob's bytes are hashed and must match the
// digest, the uncompressed bytes are hashed and must match the diff_id (for an uncompressed blob they
// are the same bytes, so the two digests must be equal). Only then are the table, the stream's restart
// points and a verified record put in the cache, all keyed by the pair (digest, diff_id). The record
// also names the identity of the bytes that were proven (device, inode, size, mtime and ctime of the
// file holding the blob, and the blob's range in it), and the header checksums of the table and stream
// index written from them. A later Open uses the cache only through a record for the same pair and the
// same identity, whose table and stream index are those files; any difference (the archive file was
// rewritten, the blob is elsewhere, a cache file was edited or replaced) means the blob is proven again.

// ErrDigestMismatch means a layer blob does not hash to the digest it was opened with.
var ErrDigestMismatch = errors.New("index: layer digest mismatch")

// ErrBlobChanged means the file holding a layer blob changed while the layer was indexed.
var ErrBlobChanged = errors.New("index: layer blob changed while it was indexed")

// mismatchError is a mismatch of several kinds at once (an uncompressed blob's digest is its diff ID).
type mismatchError struct {
	msg   string
	kinds []error
}

func (e *mismatchError) Error() string   { return e.msg }
func (e *mismatchError) Unwrap() []error { return e.kinds }

const recordVersion = 1

// verifiedRecord is what a proof established, stored as JSON in CacheDir/verified/v1/<name>.json.
type verifiedRecord struct {
	Version     int           `json:"version"`
	Digest      digest.Digest `json:"digest"`
	DiffID      digest.Digest `json:"diff_id"`
	Compression string        `json:"compression"`
	Source      string        `json:"source"` // identity of the proven bytes (sourceIdentity)
	BlobSize    int64         `json:"blob_size"`
	StreamSize  int64         `json:"stream_size"`
	TableCRC    uint32        `json:"table_header_crc"`
	StreamCRC   uint32        `json:"stream_header_crc,omitempty"`
	Sum         string        `json:"sum"` // sha256 of the record with Sum empty
}

func (r *verifiedRecord) sum() string {
	c := *r
	c.Sum = ""
	b, _ := json.Marshal(&c)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// recordPath is where the record of (d, x) proven at source lives.
func recordPath(cacheDir string, d, x digest.Digest, source string) string {
	h := sha256.Sum256([]byte(string(d) + "\n" + string(x) + "\n" + source))
	return filepath.Join(cacheDir, "verified", "v"+strconv.Itoa(recordVersion), hex.EncodeToString(h[:])+".json")
}

// readRecord reads and checks a record file; a missing file gives an error wrapping os.ErrNotExist.
func readRecord(path string) (*verifiedRecord, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r verifiedRecord
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("verified record %s: %w", path, err)
	}
	if r.Version != recordVersion {
		return nil, fmt.Errorf("verified record %s: version %d, want %d", path, r.Version, recordVersion)
	}
	if r.Sum != r.sum() {
		return nil, fmt.Errorf("verified record %s: checksum mismatch", path)
	}
	return &r, nil
}

// writeRecord stores r atomically at path.
func writeRecord(path string, r *verifiedRecord) error {
	r.Version = recordVersion
	r.Sum = r.sum()
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("storing verified record: %w", err)
	}
	f, err := atomicfile.Create(path, ".record-*.tmp")
	if err != nil {
		return fmt.Errorf("storing verified record: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Abort()
		return fmt.Errorf("storing verified record: %w", err)
	}
	if err := f.Commit(); err != nil {
		return fmt.Errorf("storing verified record: %w", err)
	}
	return nil
}

// sourceIdentity names the bytes of blob so that a change to them is seen: the identity of the file
// that holds them (Origin, else File) and their range in it. ok is false when the blob is not in a file
// (then nothing proven about it is remembered).
func sourceIdentity(blob Blob) (id string, ok bool) {
	f, kind := blob.Origin, "decompressed"
	if f == nil {
		f, kind = blob.File, "file"
	}
	if f == nil && blob.ID != "" {
		return fmt.Sprintf("%s len=%d", blob.ID, blob.Size), true
	}
	if f == nil {
		return "", false
	}
	fid, err := compression.FileIdentity(f)
	if err != nil {
		return "", false
	}
	return fmt.Sprintf("%s %s off=%d len=%d", fid, kind, blob.Off, blob.Size), true
}

// blobHasher hashes a blob's bytes in the background while the layer is indexed.
type blobHasher struct {
	done   chan struct{}
	cancel context.CancelFunc
	n      atomic.Int64
	d      digest.Digest
	err    error
}

func hashInBackground(ctx context.Context, blob Blob) *blobHasher {
	ctx, cancel := context.WithCancel(ctx)
	h := &blobHasher{done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(h.done)
		// Reads run ahead of the hash by a few chunks (hashed on a goroutine of their own), so the
		// pass goes at the speed of sha256, not of sha256 plus the reads.
		const nbuf = 4
		free := make(chan *chunk, nbuf)
		for range nbuf {
			free <- &chunk{b: make([]byte, hashChunk), free: free}
		}
		st := newHashStage(nbuf)
		err := readChunks(ctx, blob, free, func(c *chunk, off int64) {
			c.refs.Store(1)
			st.in <- c
			h.n.Store(off)
		})
		sum := st.finish()
		if err != nil {
			if ctx.Err() == nil {
				err = fmt.Errorf("hashing blob: %w", err)
			}
			h.err = err
			return
		}
		h.d = digest.NewDigest(digest.SHA256, sum)
	}()
	return h
}

// wait returns the blob's digest, calling tick about ten times a second until it is known.
func (h *blobHasher) wait(tick func()) (digest.Digest, error) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-h.done:
			h.cancel()
			return h.d, h.err
		case <-t.C:
			tick()
		}
	}
}

// stop abandons the hashing.
func (h *blobHasher) stop() {
	h.cancel()
	<-h.done
}

// readChunks reads blob whole, in order, into buffers taken from free, and hands each filled one to
// send with the offset reached: the one read loop of the hash passes. A short read is
// io.ErrUnexpectedEOF; cancelling ctx stops it with ctx's error.
func readChunks(ctx context.Context, blob Blob, free chan *chunk, send func(c *chunk, off int64)) error {
	for off := int64(0); off < blob.Size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := <-free
		p := c.b[:min(int64(len(c.b)), blob.Size-off)]
		n, err := blob.R.ReadAt(p, blob.Off+off)
		off += int64(n)
		if n < len(p) {
			free <- c
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("reading blob at %d: %w", off, err)
		}
		c.n = n
		send(c, off)
	}
	return nil
}

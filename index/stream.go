package index

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/opencontainers/go-digest"
)

// Compression names the compression of a blob.
type Compression uint8

// Compressions recognised by DetectCompression.
const (
	CompressionNone Compression = iota
	CompressionGzip
	CompressionZstd
)

// String returns "none", "gzip" or "zstd".
func (c Compression) String() string {
	switch c {
	case CompressionNone:
		return "none"
	case CompressionGzip:
		return "gzip"
	case CompressionZstd:
		return "zstd"
	}
	return fmt.Sprintf("compression(%d)", uint8(c))
}

// ErrUnsupportedCompression is returned for compressed data in a format that cannot be read (bzip2, xz).
var ErrUnsupportedCompression = errors.New("index: unsupported compression")

var errNotImplemented = errors.New("index: compressed streams not implemented yet")

// DetectCompression reads the magic bytes at off in r and says how the data is compressed. Data that
// matches no known magic is CompressionNone. bzip2 and xz data give an error wrapping
// ErrUnsupportedCompression.
func DetectCompression(r io.ReaderAt, off int64) (Compression, error) {
	return CompressionNone, errNotImplemented
}

// StreamOptions configure the indexing and opening of a compressed stream.
type StreamOptions struct {
	// CacheDir is the root of the cache; checkpoints live under CacheDir/stream/v<N>/. Empty: nothing
	// is persisted.
	CacheDir string
	// Key is the digest of the stored blob, the cache key of its checkpoints. Empty: nothing is persisted.
	Key digest.Digest
	// Logger receives progress and fallback notes; nil discards.
	Logger *slog.Logger
	// Progress, when set, is called at most about ten times a second while a stream is indexed.
	Progress func(Progress)
}

// Progress reports how far the indexing of a layer has got.
type Progress struct {
	Entries int64 // members indexed so far (0 when only a stream is indexed)
	Bytes   int64 // bytes of the blob consumed so far
	Total   int64 // size of the blob
}

// StreamIndexer decompresses a blob sequentially, records restart points as it goes, and turns them
// into a random-access Stream once the end is reached.
type StreamIndexer struct {
	blob Blob
	c    Compression
	opts StreamOptions
}

// NewStreamIndexer starts an indexing pass over blob, compressed with c.
func NewStreamIndexer(ctx context.Context, blob Blob, c Compression, opts StreamOptions) (*StreamIndexer, error) {
	return nil, errNotImplemented
}

// Read reads decompressed bytes sequentially, recording checkpoints as it goes.
func (s *StreamIndexer) Read(p []byte) (int, error) { return 0, errNotImplemented }

// DiffID returns the sha256 digest of all decompressed output. It is valid after Read returned io.EOF.
func (s *StreamIndexer) DiffID() digest.Digest { return "" }

// Consumed returns the number of compressed bytes consumed so far.
func (s *StreamIndexer) Consumed() int64 { return 0 }

// Finish, called after Read returned io.EOF, persists the checkpoints (when StreamOptions.Key and
// CacheDir are set) and returns the random-access stream. The Stream stays valid after Close.
func (s *StreamIndexer) Finish() (*Stream, error) { return nil, errNotImplemented }

// Close releases the indexer's resources.
func (s *StreamIndexer) Close() error { return nil }

// LoadStream opens a stream from its persisted checkpoints only. ok is false when they are absent or
// stale (then nothing is returned and the caller indexes the stream).
func LoadStream(ctx context.Context, blob Blob, c Compression, opts StreamOptions) (*Stream, bool, error) {
	return nil, false, errNotImplemented
}

// OpenCompressed detects the compression of blob and returns a random-access stream of its decompressed
// bytes: from persisted checkpoints when present, otherwise by indexing the whole stream in one pass.
func OpenCompressed(ctx context.Context, blob Blob, opts StreamOptions) (*Stream, error) {
	return nil, errNotImplemented
}

// Stream gives random access to the decompressed bytes of a blob. It is safe for concurrent use.
type Stream struct {
	c    Compression
	size int64
}

// ReadAt reads decompressed bytes at off.
func (s *Stream) ReadAt(p []byte, off int64) (int, error) { return 0, errNotImplemented }

// Size returns the uncompressed size.
func (s *Stream) Size() int64 { return s.size }

// Compression returns the compression of the underlying blob.
func (s *Stream) Compression() Compression { return s.c }

// File returns the plain file holding the decompressed data when there is one (an uncompressed blob
// backed by a file, or a decompressed copy), so that reads can be served by splice. The byte at stream
// offset x is at file offset FileOffset()+x.
func (s *Stream) File() (*os.File, bool) { return nil, false }

// FileOffset returns the offset in File of the stream's first byte (0 for a decompressed copy).
func (s *Stream) FileOffset() int64 { return 0 }

// Close releases the stream's resources.
func (s *Stream) Close() error { return nil }

package compression

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// spanSize is the distance in uncompressed bytes between restart points of a compressed stream: a
// random read decodes at most about this much before its first byte. Options.SpanSize replaces it.
// 1 MiB: a 4 KiB random read in a gzip stream inflates 0.5 MiB on average (about 2 ms), and the
// windows, stored deflated, cost ~1-3% of the uncompressed size in the cache.
const spanSize int64 = 1 << 20

// Options configure the indexing and opening of a compressed stream.
type Options struct {
	// CacheDir is the root of the cache; restart points live under CacheDir/stream/v<N>/. Empty:
	// nothing is persisted.
	CacheDir string
	// Key is the digest of the stored blob ("sha256:" and 64 lowercase hex digits), the cache key of its
	// restart points. Empty: nothing is persisted. Any other form is an error.
	Key digest.Digest
	// DiffID, when set, is the diff_id the stream was verified to have: part of the cache key, and a
	// persisted index must say the same.
	DiffID digest.Digest
	// Logger receives notes about building and loading; nil discards.
	Logger *slog.Logger
	// Progress, when set, is called by Open at most about ten times a second while it indexes
	// a stream. An Indexer does not call it: its user reports progress with Consumed.
	Progress func(Progress)
	// SpanSize and HugeFrame, when positive, replace spanSize and zstdHugeFrame (for tests: small inputs
	// then get many restart points, or a decompressed copy).
	SpanSize, HugeFrame int64
}

// Progress reports how far the indexing of a stream has got.
type Progress struct {
	Bytes int64 // bytes of the blob consumed so far
	Total int64 // size of the blob
}

// Blob is a byte range of a source: Size bytes at Off in R. When File is set, R is that file and Off is
// an absolute file offset, so readers may serve data by splice. Origin, when set, is the file whose
// bytes R derives from (a compressed archive holding the blob; File may then be a decompressed copy):
// its identity, not File's, says whether the blob may have changed since it was verified.
type Blob struct {
	R         io.ReaderAt
	Off, Size int64
	File      *os.File
	Origin    *os.File
	// ID, when File and Origin are nil, names content-addressed bytes that are not in a file (a
	// registry blob: "registry-blob <digest>"), so that what was proven about them is remembered.
	ID string
}

func (o *Options) span() int64 {
	if o.SpanSize > 0 {
		return o.SpanSize
	}
	return spanSize
}

func (o *Options) hugeFrame() int64 {
	if o.HugeFrame > 0 {
		return o.HugeFrame
	}
	return zstdHugeFrame
}

func (o *Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// indexer is the compression-specific half of an Indexer.
type indexer interface {
	read(p []byte) (int, error)
	consumed() int64
	// finish is called once read returned io.EOF; it returns the stream, which takes over the
	// indexer's files, and the cache files still to be put in place.
	finish(size int64, diffID digest.Digest) (*Stream, Pending, error)
	close()
}

// Indexer decompresses a blob sequentially, records restart points as it goes, and turns them
// into a random-access Stream once the end is reached. For gzip it verifies every member's CRC-32 and
// size; for zstd, the frames' checksums when present.
type Indexer struct {
	ctx      context.Context
	c        Format
	ix       indexer
	hash     hash.Hash
	out      int64
	eof      bool
	err      error
	finished bool
}

// NewIndexer starts an indexing pass over blob, compressed with c. Read it to io.EOF, then call
// Finish; call Close in any case.
func NewIndexer(ctx context.Context, blob Blob, c Format, opts Options) (*Indexer, error) {
	var (
		ix  indexer
		err error
	)
	switch c {
	case None:
		ix = newPlainIndexer(blob)
	case Gzip:
		ix, err = newGzipIndexer(ctx, blob, opts)
	case Zstd:
		ix, err = newZstdIndexer(ctx, blob, opts)
	default:
		err = fmt.Errorf("%w: %s", ErrUnsupported, c)
	}
	if err != nil {
		return nil, fmt.Errorf("indexing %s stream: %w", c, err)
	}
	return &Indexer{ctx: ctx, c: c, ix: ix, hash: sha256.New()}, nil
}

// Read reads decompressed bytes sequentially, recording restart points as it goes. A damaged stream
// gives an error; io.EOF means the whole stream was read and verified.
func (s *Indexer) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.eof {
		return 0, io.EOF
	}
	if err := s.ctx.Err(); err != nil {
		s.err = err
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := s.ix.read(p)
	s.hash.Write(p[:n])
	s.out += int64(n)
	switch {
	case err == io.EOF:
		s.eof = true
	case err != nil:
		s.err = fmt.Errorf("indexing %s stream: %w", s.c, err)
		err = s.err
	}
	return n, err
}

// DiffID returns the sha256 digest of all decompressed output. It is valid after Read returned io.EOF.
func (s *Indexer) DiffID() digest.Digest {
	if !s.eof {
		return ""
	}
	return digest.NewDigest(digest.SHA256, s.hash)
}

// Consumed returns the number of compressed bytes consumed so far.
func (s *Indexer) Consumed() int64 { return s.ix.consumed() }

// Finish, called after Read returned io.EOF, persists the restart points (when Options.Key and
// CacheDir are set) and returns the random-access stream, which stays valid after Close.
func (s *Indexer) Finish() (*Stream, error) {
	st, p, err := s.FinishPending()
	if err != nil {
		return nil, err
	}
	if err := p.Commit(); err != nil {
		st.Close()
		return nil, fmt.Errorf("indexing %s stream: %w", s.c, err)
	}
	return st, nil
}

// FinishPending is Finish without persisting: the caller commits the pending files once it has
// verified what the stream claims to be, or discards them.
func (s *Indexer) FinishPending() (*Stream, Pending, error) {
	if !s.eof {
		return nil, nil, fmt.Errorf("indexing %s stream: finish before the end of the stream", s.c)
	}
	if s.finished {
		return nil, nil, fmt.Errorf("indexing %s stream: finished twice", s.c)
	}
	s.finished = true
	st, p, err := s.ix.finish(s.out, s.DiffID())
	if err != nil {
		return nil, nil, fmt.Errorf("indexing %s stream: %w", s.c, err)
	}
	return st, p, nil
}

// Close releases the indexer's resources; after a successful Finish it leaves the Stream alone.
func (s *Indexer) Close() error {
	s.ix.close()
	return nil
}

// Load opens a stream from its persisted restart points only. ok is false when they are absent,
// stale or damaged (then nothing is returned and the caller indexes the stream); a damaged file is
// reported in the log. None needs nothing persisted: the Stream is the blob itself.
func Load(ctx context.Context, blob Blob, c Format, opts Options) (*Stream, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	var (
		s   *Stream
		err error
	)
	switch c {
	case None:
		return newPlainStream(blob), true, nil
	case Gzip, Zstd:
		s, err = loadPersisted(blob, c, opts)
	default:
		return nil, false, fmt.Errorf("%w: %s", ErrUnsupported, c)
	}
	switch {
	case err == nil:
		if s == nil {
			return nil, false, nil
		}
		opts.logger().Debug("loaded stream index", "key", opts.Key, "compression", c, "size", s.size, "points", len(s.points))
		return s, true, nil
	case errors.Is(err, os.ErrNotExist):
		return nil, false, nil
	case errors.Is(err, errStale):
		opts.logger().Warn("rebuilding stream index", "key", opts.Key, "compression", c, "reason", err)
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("loading %s stream index: %w", c, err)
}

// Open detects the compression of blob and returns a random-access stream of its decompressed
// bytes: from persisted restart points when present, otherwise by indexing the whole stream in one pass
// (reporting progress). Uncompressed data is returned as it is.
func Open(ctx context.Context, blob Blob, opts Options) (*Stream, error) {
	c, err := Detect(io.NewSectionReader(blob.R, blob.Off, blob.Size), 0)
	if err != nil {
		return nil, err
	}
	if s, ok, err := Load(ctx, blob, c, opts); err != nil || ok {
		return s, err
	}
	ix, err := NewIndexer(ctx, blob, c, opts)
	if err != nil {
		return nil, err
	}
	defer ix.Close()
	buf := make([]byte, 256<<10)
	var last time.Time
	for {
		_, err := ix.Read(buf)
		if opts.Progress != nil && (err != nil || time.Since(last) >= 100*time.Millisecond) {
			last = time.Now()
			opts.Progress(Progress{Bytes: ix.Consumed(), Total: blob.Size})
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return ix.Finish()
}

// cursor is a live decoder positioned in a compressed stream.
type cursor interface {
	io.Reader
	// reset positions the cursor at a restart point.
	reset(pt *point) error
	// pos returns the uncompressed offset of the next byte Read returns.
	pos() int64
	close()
}

// Stream gives random access to the decompressed bytes of a blob. It is safe for concurrent use.
type Stream struct {
	c      Format
	size   int64
	diffID digest.Digest
	hdrCRC uint32 // checksum of the persisted index's header (compressed streams)

	// Plain data: the blob range (None) or a decompressed copy.
	ra      io.ReaderAt
	raOff   int64
	file    *os.File
	ownFile bool

	// Compressed data: restart points and live cursors.
	points    []point
	ckpt      *os.File // gzip windows
	newCursor func() cursor
	lru       *cursorLRU // idle cursors of this kind across all streams

	mu     sync.Mutex
	idle   []cursor // least recently used first
	closed bool
}

// Plain returns the Stream of an uncompressed blob: the blob itself.
func Plain(blob Blob) *Stream { return newPlainStream(blob) }

func newPlainStream(blob Blob) *Stream {
	return &Stream{c: None, size: blob.Size, ra: blob.R, raOff: blob.Off, file: blob.File}
}

// newFileStream serves a decompressed copy.
func newFileStream(c Format, f *os.File, size int64, diffID digest.Digest) *Stream {
	return &Stream{c: c, size: size, diffID: diffID, ra: f, file: f, ownFile: true}
}

// ReadAt reads decompressed bytes at off. It returns io.EOF when fewer than len(p) bytes remain. A
// stream that does not decode as it did when it was indexed gives an error.
func (s *Stream) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("compression: negative offset %d", off)
	}
	if off >= s.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	want := p
	if rem := s.size - off; int64(len(want)) > rem {
		want = want[:rem]
	}
	var (
		n   int
		err error
	)
	if s.ra != nil {
		n, err = s.ra.ReadAt(want, s.raOff+off)
		if n == len(want) {
			err = nil
		} else if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
	} else {
		n, err = s.readCompressed(want, off)
	}
	if err != nil {
		return n, fmt.Errorf("reading %s stream at %d: %w", s.c, off+int64(n), err)
	}
	if len(want) < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (s *Stream) readCompressed(p []byte, off int64) (int, error) {
	i := sort.Search(len(s.points), func(i int) bool { return s.points[i].Out > off }) - 1
	if i < 0 {
		return 0, errors.New("compression: no restart point")
	}
	cur, err := s.acquire(off, &s.points[i])
	if err != nil {
		return 0, err
	}
	if skip := off - cur.pos(); skip > 0 {
		err = discard(cur, skip)
	}
	var n int
	if err == nil {
		n, err = io.ReadFull(cur, p)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
	}
	s.release(cur, err == nil)
	return n, err
}

var scratchPool = sync.Pool{New: func() any { b := make([]byte, windowSize); return &b }}

// discard reads and drops n bytes from r.
func discard(r io.Reader, n int64) error {
	bp := scratchPool.Get().(*[]byte)
	defer scratchPool.Put(bp)
	buf := *bp
	for n > 0 {
		m, err := r.Read(buf[:min(n, int64(len(buf)))])
		n -= int64(m)
		if n > 0 && err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		if err != nil && err != io.EOF {
			return err
		}
	}
	return nil
}

// IndexCRC returns the checksum of the header of the persisted index the stream was built or loaded
// with (0 for uncompressed data), so that a record can name the very index it vouches for.
func (s *Stream) IndexCRC() uint32 { return s.hdrCRC }

// Size returns the uncompressed size.
func (s *Stream) Size() int64 { return s.size }

// File returns the plain file holding the decompressed data when there is one (an uncompressed blob
// backed by a file, or a decompressed copy), so that reads can be served by splice. The byte at stream
// offset x is at file offset FileOffset()+x.
func (s *Stream) File() (*os.File, bool) { return s.file, s.file != nil }

// FileOffset returns the offset in File of the stream's first byte (0 for a decompressed copy).
func (s *Stream) FileOffset() int64 {
	if s.file == nil {
		return 0
	}
	return s.raOff
}

// Close releases the stream's decoders and files. A blob's own file is left open.
func (s *Stream) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	idle := s.idle
	s.idle = nil
	for _, c := range idle {
		s.lru.remove(c)
	}
	s.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
	var err error
	if s.ckpt != nil {
		err = s.ckpt.Close()
	}
	if s.ownFile && s.file != nil {
		if cerr := s.file.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// rangeReader reads a byte range of a ReaderAt sequentially.
type rangeReader struct {
	r        io.ReaderAt
	off, end int64
}

func (r *rangeReader) Read(p []byte) (int, error) {
	if r.off >= r.end {
		return 0, io.EOF
	}
	if rem := r.end - r.off; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := r.r.ReadAt(p, r.off)
	r.off += int64(n)
	if n == len(p) {
		return n, nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF // the blob is shorter than it says
	}
	return n, err
}

// plainIndexer passes an uncompressed blob through.
type plainIndexer struct {
	blob Blob
	r    rangeReader
}

func newPlainIndexer(blob Blob) *plainIndexer {
	return &plainIndexer{blob: blob, r: rangeReader{r: blob.R, off: blob.Off, end: blob.Off + blob.Size}}
}

func (p *plainIndexer) read(b []byte) (int, error) { return p.r.Read(b) }
func (p *plainIndexer) consumed() int64            { return p.r.off - p.blob.Off }
func (p *plainIndexer) close()                     {}

func (p *plainIndexer) finish(size int64, diffID digest.Digest) (*Stream, Pending, error) {
	s := newPlainStream(p.blob)
	s.diffID = diffID
	return s, nil, nil
}

// DiffID returns the sha256 digest of the decompressed bytes when it is known (the stream was indexed,
// or loaded from an index that recorded it), else "".
func (s *Stream) DiffID() digest.Digest { return s.diffID }

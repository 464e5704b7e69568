package index

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"

	"github.com/opencontainers/go-digest"
)

// ErrDiffIDMismatch means the uncompressed layer does not hash to the DiffID it was opened with.
var ErrDiffIDMismatch = errors.New("index: layer diff ID mismatch")

// ErrNotRegular is returned by Layer.ReadAt for an entry that is not a regular file.
var ErrNotRegular = errors.New("index: not a regular file")

// Options configure Open.
type Options struct {
	// CacheDir is the root of the cache; tables live under CacheDir/index/v<N>/sha256/. Empty: nothing
	// is persisted.
	CacheDir string
	// DiffID is the sha256 of the uncompressed tar, the table's cache key. A compressed layer is
	// verified against it while it is indexed.
	DiffID digest.Digest
	// Digest is the digest of the stored blob: the key of compressed-stream restart points, and the
	// table's key when DiffID is empty. With neither, the table is built in a temporary file.
	Digest digest.Digest
	// Logger receives warnings about dropped members and rebuilt caches; nil discards.
	Logger *slog.Logger
	// Progress, when set, is called at most about ten times a second while a table is built.
	Progress func(Progress)
}

// Layer is one layer ready for the mount: its member table and random access to member data.
type Layer struct {
	*Table
	stream *Stream
	comp   Compression
}

// Open returns the layer stored in blob: its table from the cache when there is a valid one, else
// built in one pass over the blob (and then persisted), and a reader of its uncompressed stream.
func Open(ctx context.Context, blob Blob, opts Options) (*Layer, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, d := range []digest.Digest{opts.DiffID, opts.Digest} {
		if d != "" {
			if _, err := checkDigest(d); err != nil {
				return nil, fmt.Errorf("opening layer: %w", err)
			}
		}
	}
	if blob.R == nil || blob.Size < 0 {
		return nil, errors.New("opening layer: no blob")
	}
	key := opts.DiffID
	if key == "" {
		key = opts.Digest
	}
	name := string(key)
	if name == "" {
		name = "(unkeyed)"
	}
	c, err := DetectCompression(io.NewSectionReader(blob.R, blob.Off, blob.Size), 0)
	if err != nil {
		return nil, fmt.Errorf("opening layer %s: %w", name, err)
	}
	// A compressed layer's table is only useful with the stream's restart points, kept by Digest.
	persist := key != "" && (c == CompressionNone || opts.Digest != "")
	path, tmpDir := "", ""
	if opts.CacheDir != "" {
		tmpDir = filepath.Join(opts.CacheDir, "index", "tmp")
		if persist {
			if path, err = tablePath(opts.CacheDir, key); err != nil {
				return nil, fmt.Errorf("opening layer: %w", err)
			}
		}
	}
	var l *Layer
	if c == CompressionNone {
		l, err = openPlain(ctx, blob, key, path, tmpDir, opts, log)
	} else {
		l, err = openCompressed(ctx, blob, c, key, path, tmpDir, opts, log)
	}
	if err != nil {
		return nil, fmt.Errorf("opening layer %s: %w", name, err)
	}
	l.LogWarnings(log, name) // on every open, from the cache too: they are stored with the table
	return l, nil
}

// openPlain opens an uncompressed layer: the table is built by scanning the blob with seeks over
// member data; data is read from the blob itself.
func openPlain(ctx context.Context, blob Blob, key digest.Digest, path, tmpDir string, opts Options, log *slog.Logger) (*Layer, error) {
	info := TableInfo{Key: key, StreamSize: blob.Size, BlobSize: blob.Size}
	stream, _, err := LoadStream(ctx, blob, CompressionNone, StreamOptions{Logger: log})
	if err != nil {
		return nil, err
	}
	var t *Table
	if path != "" {
		t = loadTable(path, info, log)
	}
	if t == nil {
		sc := newScannerAt(blob.R, blob.Off, blob.Size)
		p := &progress{fn: opts.Progress, total: blob.Size, bytes: sc.Pos}
		b := newBuilder(log)
		sc.onRead = func(int64) error { p.report(b.members, false); return ctx.Err() }
		if err := b.scan(ctx, sc, func(n int64) error { p.report(n, false); return nil }); err != nil {
			stream.Close()
			return nil, err
		}
		p.done(b.members)
		b.logSummary(key)
		if t, err = storeTable(b, info, path, tmpDir); err != nil {
			stream.Close()
			return nil, err
		}
	}
	return &Layer{Table: t, stream: stream, comp: CompressionNone}, nil
}

// openCompressed opens a gzip or zstd layer: a cached table with the stream's persisted restart points,
// else one pass through a StreamIndexer that builds both (and checks the DiffID).
func openCompressed(ctx context.Context, blob Blob, c Compression, key digest.Digest, path, tmpDir string, opts Options, log *slog.Logger) (*Layer, error) {
	sopts := StreamOptions{CacheDir: opts.CacheDir, Key: opts.Digest, Logger: log}
	if path != "" {
		if t := loadTable(path, TableInfo{Key: key, StreamSize: -1}, log); t != nil {
			s, ok, err := LoadStream(ctx, blob, c, sopts)
			switch {
			case err != nil:
				t.Close()
				return nil, err
			case ok && s.Size() == t.Info().StreamSize:
				return &Layer{Table: t, stream: s, comp: c}, nil
			case ok:
				log.Warn("index: rebuilding table and stream index", "key", key, "table_stream_size",
					t.Info().StreamSize, "stream_size", s.Size())
				s.Close()
			}
			t.Close()
		}
	}

	ix, err := NewStreamIndexer(ctx, blob, c, sopts)
	if err != nil {
		return nil, err
	}
	defer ix.Close()
	sc := newScanner(ix)
	p := &progress{fn: opts.Progress, total: blob.Size, bytes: ix.Consumed}
	b := newBuilder(log)
	sc.onRead = func(int64) error { p.report(b.members, false); return ctx.Err() }
	if err := b.scan(ctx, sc, func(n int64) error { p.report(n, false); return nil }); err != nil {
		return nil, err
	}
	// Read the rest of the stream (the end-of-archive padding, usually) so that it is verified and hashed.
	buf := make([]byte, 256<<10)
	for {
		_, err := ix.Read(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		p.report(b.members, false)
	}
	p.done(b.members)
	s, err := ix.Finish()
	if err != nil {
		return nil, err
	}
	if opts.DiffID != "" && ix.DiffID() != opts.DiffID {
		s.Close()
		return nil, fmt.Errorf("%w: uncompressed data is %s, expected %s", ErrDiffIDMismatch, ix.DiffID(), opts.DiffID)
	}
	b.logSummary(key)
	t, err := storeTable(b, TableInfo{Key: key, StreamSize: s.Size(), BlobSize: blob.Size}, path, tmpDir)
	if err != nil {
		s.Close()
		return nil, err
	}
	return &Layer{Table: t, stream: s, comp: c}, nil
}

// logSummary reports the build at debug level (its warnings are logged from the table, by Open).
func (b *builder) logSummary(key digest.Digest) {
	b.log.Debug("index: built table", "layer", key, "members", b.members, "entries", b.n, "dropped", b.dropped)
}

// Compression returns how the layer's blob is compressed.
func (l *Layer) Compression() Compression { return l.comp }

// Close releases the table and the stream.
func (l *Layer) Close() error {
	err := l.Table.Close()
	if serr := l.stream.Close(); err == nil {
		err = serr
	}
	return err
}

// regular returns the entry whose data a read of id serves (a hardlink's target in this layer).
func (l *Layer) regular(id ID) (ID, Entry, bool) {
	e := l.Entry(id)
	if e.Type == TypeHardlink && e.Link != NoID {
		id = e.Link
		e = l.Entry(id)
	}
	return id, e, e.Type == TypeRegular
}

// ReadAt reads the data of regular file id (or of a hardlink's target in this layer) at offset off,
// bounded to the member: it returns io.EOF at the member's end. Holes of sparse files read as zeros.
func (l *Layer) ReadAt(id ID, p []byte, off int64) (int, error) {
	id, e, ok := l.regular(id)
	if !ok {
		return 0, fmt.Errorf("reading entry %d: %w", id, ErrNotRegular)
	}
	if off < 0 {
		return 0, fmt.Errorf("reading entry %d: negative offset", id)
	}
	if off >= e.Size {
		return 0, io.EOF
	}
	want := p
	if int64(len(p)) > e.Size-off {
		want = p[:e.Size-off]
	}
	var n int
	var err error
	if e.Flags&FlagSparse == 0 {
		n, err = l.readData(e.Offset+off, want)
	} else {
		n, err = l.readSparse(id, e, want, off)
	}
	if err != nil {
		return n, fmt.Errorf("reading entry %d: %w", id, err)
	}
	if len(want) < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// readData reads exactly len(p) bytes of the uncompressed stream at off.
func (l *Layer) readData(off int64, p []byte) (int, error) {
	if off < 0 {
		return 0, ErrCorruptTable
	}
	n, err := l.stream.ReadAt(p, off)
	if n == len(p) {
		return n, nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// readSparse fills p with the logical bytes at off of a sparse file.
func (l *Layer) readSparse(id ID, e Entry, p []byte, off int64) (int, error) {
	raw, cnt := l.sparseMap(id)
	// First region that ends after off.
	i := sort.Search(cnt, func(i int) bool {
		r := sparseRegion(raw, i)
		return r.Offset+r.Length > off
	})
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		if i >= cnt {
			clear(p[done:])
			return len(p), nil
		}
		r := sparseRegion(raw, i)
		if r.Offset < 0 || r.Length < 0 || r.Physical < 0 || r.Offset+r.Length < r.Offset {
			return done, ErrCorruptTable
		}
		if pos < r.Offset {
			k := int(min(int64(len(p)-done), r.Offset-pos))
			clear(p[done : done+k])
			done += k
			continue
		}
		k := int(min(int64(len(p)-done), r.Offset+r.Length-pos))
		if k <= 0 {
			i++
			continue
		}
		if _, err := l.readData(e.Offset+r.Physical+(pos-r.Offset), p[done:done+k]); err != nil {
			return done, err
		}
		done += k
		i++
	}
	return done, nil
}

// FileRange returns the file and offset holding the data of regular file id (or a hardlink's target
// in this layer) when it is a plain range of a file, so that reads can be served by splice: an
// uncompressed blob backed by a file, or a decompressed copy, and a file that is not sparse.
func (l *Layer) FileRange(id ID) (f *os.File, off int64, ok bool) {
	_, e, reg := l.regular(id)
	if !reg || e.Flags&FlagSparse != 0 {
		return nil, 0, false
	}
	f, ok = l.stream.File()
	if !ok {
		return nil, 0, false
	}
	return f, l.stream.FileOffset() + e.Offset, true
}

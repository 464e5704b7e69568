package index

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"

	"github.com/imgfs/imgfs/compression"
	"github.com/opencontainers/go-digest"
)

// ErrDiffIDMismatch means the uncompressed layer does not hash to the DiffID it was opened with.
var ErrDiffIDMismatch = errors.New("index: layer diff ID mismatch")

// ErrNotRegular is returned by Layer.ReadAt for an entry that is not a regular file.
var ErrNotRegular = errors.New("index: not a regular file")

// Options configure Open.
type Options struct {
	// CacheDir is the root of the cache: tables under CacheDir/index/v<N>/sha256/, restart points under
	// CacheDir/stream/v<N>/, verified records under CacheDir/verified/v<N>/. Empty: nothing is persisted.
	CacheDir string
	// DiffID is the claimed sha256 of the uncompressed tar; the layer is verified against it while it
	// is indexed.
	DiffID digest.Digest
	// Digest is the claimed digest of the stored blob; the blob is hashed while it is indexed and must
	// match. For an uncompressed blob it must equal DiffID (either may stand for both). The cache is
	// keyed by the pair: with either missing, nothing is persisted.
	Digest digest.Digest
	// Logger receives warnings about dropped members and rebuilt caches; nil discards.
	Logger *slog.Logger
	// Progress, when set, is called at most about ten times a second while a table is built.
	Progress func(Progress)

	// spanSize and hugeFrame, when positive, replace the compression package's spacing of restart
	// points and its bound on zstd frames (set by tests of this package).
	spanSize, hugeFrame int64
}

// Layer is one layer ready for the mount: its member table and random access to member data.
type Layer struct {
	*Table
	stream *compression.Stream
	comp   compression.Format
	src    sourceStamp // the archive file as it was when the layer was opened
}

// layerOpen is one Open: the claims, where their proof is kept, and the identity of the blob's bytes.
type layerOpen struct {
	blob     Blob
	c        compression.Format
	d, x     digest.Digest // claimed blob digest and diff_id (equal for an uncompressed blob)
	source   string        // sourceIdentity of the blob; "" when it has none
	table    string        // table path; "" when nothing is persisted
	record   string        // verified record path; "" when nothing is persisted
	tmpDir   string
	cacheDir string
	opts     Options
	log      *slog.Logger
	proof    *Proof // set by Prove: what the pass found, also when a claim is broken
}

// Open returns the layer stored in blob: its table from the cache when a verified record says this
// very blob was proven to have the claimed digest and diff_id, else built in one pass over the blob
// that proves them (and then persisted), and a reader of its uncompressed stream.
func Open(ctx context.Context, blob Blob, opts Options) (*Layer, error) {
	lo, name, err := newLayerOpen(blob, opts)
	if err != nil {
		return nil, err
	}
	l := lo.load(ctx)
	if l == nil {
		l, err = lo.build(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("opening layer %s: %w", name, err)
	}
	l.LogWarnings(lo.log, name) // on every open, from the cache too: they are stored with the table
	return l, nil
}

// newLayerOpen checks the claims of an Open and finds where their proof is kept; name names the layer
// in messages.
func newLayerOpen(blob Blob, opts Options) (_ *layerOpen, name string, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, d := range []digest.Digest{opts.DiffID, opts.Digest} {
		if d != "" {
			if _, err := checkSHA256(d); err != nil {
				return nil, "", fmt.Errorf("opening layer: %w", err)
			}
		}
	}
	if blob.R == nil || blob.Size < 0 {
		return nil, "", errors.New("opening layer: no blob")
	}
	name = cmp.Or(string(opts.DiffID), string(opts.Digest), "(unkeyed)")
	c, err := compression.Detect(io.NewSectionReader(blob.R, blob.Off, blob.Size), 0)
	if err != nil {
		return nil, "", fmt.Errorf("opening layer %s: %w", name, err)
	}
	lo := &layerOpen{blob: blob, c: c, d: opts.Digest, x: opts.DiffID, cacheDir: opts.CacheDir, opts: opts, log: log}
	if c == compression.None {
		// The stored bytes are the uncompressed tar: one digest for both, a free check.
		if lo.d != "" && lo.x != "" && lo.d != lo.x {
			return nil, "", fmt.Errorf("opening layer %s: %w: the blob is uncompressed, so its digest %s must equal its diff ID %s",
				name, ErrDiffIDMismatch, lo.d, lo.x)
		}
		lo.d, lo.x = cmp.Or(lo.d, lo.x), cmp.Or(lo.x, lo.d)
	}
	if opts.CacheDir != "" {
		lo.tmpDir = filepath.Join(opts.CacheDir, "index", "tmp")
		if src, ok := sourceIdentity(blob); ok && lo.d != "" && lo.x != "" {
			lo.source = src
			if lo.table, err = tablePath(opts.CacheDir, lo.d, lo.x); err != nil {
				return nil, "", fmt.Errorf("opening layer: %w", err)
			}
			lo.record = recordPath(opts.CacheDir, lo.d, lo.x, src)
		}
	}
	return lo, name, nil
}

// streamOptions are the options of the layer's compressed stream: keyed by the verified pair.
func (lo *layerOpen) streamOptions() compression.Options {
	so := compression.Options{Logger: lo.log, SpanSize: lo.opts.spanSize, HugeFrame: lo.opts.hugeFrame}
	if lo.table != "" {
		so.CacheDir, so.Key, so.DiffID = lo.cacheDir, lo.d, lo.x
	} else if lo.cacheDir != "" {
		so.CacheDir = lo.cacheDir // for temporary files only: no key, nothing persisted
	}
	return so
}

// load returns the layer from the cache when a verified record for this blob's identity ties a table
// and a stream index to the claimed pair; nil (with the reason logged) when the blob must be proven.
func (lo *layerOpen) load(ctx context.Context) *Layer {
	if lo.record == "" {
		return nil
	}
	rec, err := readRecord(lo.record)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			lo.log.Warn("index: verifying layer again", "layer", lo.x, "reason", err)
		}
		return nil
	}
	if rec.Digest != lo.d || rec.DiffID != lo.x || rec.Source != lo.source || rec.Compression != lo.c.String() ||
		rec.BlobSize != lo.blob.Size {
		lo.log.Warn("index: verifying layer again", "layer", lo.x, "reason", "verified record is for other bytes", "path", lo.record)
		return nil
	}
	t := loadTable(lo.table, TableInfo{Key: lo.x, Blob: lo.d, StreamSize: rec.StreamSize, BlobSize: lo.blob.Size}, lo.log)
	if t == nil {
		return nil
	}
	if t.headerCRC() != rec.TableCRC {
		lo.log.Warn("index: rebuilding table", "path", lo.table, "reason", "not the table that was verified")
		t.Close()
		return nil
	}
	if lo.c == compression.None {
		return &Layer{Table: t, stream: compression.Plain(lo.blob), comp: lo.c, src: stampOf(lo.blob.File)}
	}
	s, ok, err := compression.Load(ctx, lo.blob, lo.c, lo.streamOptions())
	switch {
	case err != nil:
		lo.log.Warn("index: rebuilding table and stream index", "layer", lo.x, "reason", err)
	case !ok:
		lo.log.Warn("index: rebuilding table and stream index", "layer", lo.x, "reason", "stream index missing or damaged")
	case s.Size() != rec.StreamSize || s.IndexCRC() != rec.StreamCRC:
		lo.log.Warn("index: rebuilding table and stream index", "layer", lo.x, "reason", "not the stream index that was verified")
		s.Close()
	default:
		return &Layer{Table: t, stream: s, comp: lo.c, src: stampOf(lo.blob.File)}
	}
	t.Close()
	return nil
}

// build indexes the layer in one pass that also proves its claims: the blob is hashed (in the
// background) against the digest, the uncompressed stream against the diff_id. Only a proven layer is
// persisted, with its verified record last.
func (lo *layerOpen) build(ctx context.Context) (_ *Layer, err error) {
	blob, log := lo.blob, lo.log
	var hasher *blobHasher
	if lo.d != "" || lo.proof != nil {
		hasher = hashInBackground(ctx, blob)
		defer func() {
			if hasher != nil {
				hasher.stop()
			}
		}()
	}
	b := newBuilder(log, lo.tmpDir)
	defer b.close()
	p := &progress{fn: lo.opts.Progress, total: blob.Size}
	var (
		stream  *compression.Stream
		pend    compression.Pending
		diffErr error // a diff_id mismatch, kept while Prove learns the blob's digest too
	)
	if lo.c == compression.None {
		// The scan seeks over member data; the hasher reads it all. Progress is the slower of the two.
		sc := newScannerAt(blob.R, blob.Off, blob.Size)
		p.bytes = sc.Pos
		if hasher != nil {
			p.bytes = func() int64 { return min(sc.Pos(), hasher.n.Load()) }
		}
		sc.onRead = func(int64) error { p.report(b.members, false); return ctx.Err() }
		if err := b.scan(ctx, sc, func(n int64) error { p.report(n, false); return nil }); err != nil {
			lo.noteFailure(hasher, nil)
			return nil, err
		}
		stream = compression.Plain(blob)
	} else {
		ix, err := compression.NewIndexer(ctx, blob, lo.c, lo.streamOptions())
		if err != nil {
			return nil, err
		}
		defer ix.Close()
		sc := newScanner(ix)
		p.bytes = ix.Consumed
		sc.onRead = func(int64) error { p.report(b.members, false); return ctx.Err() }
		if err := b.scan(ctx, sc, func(n int64) error { p.report(n, false); return nil }); err != nil {
			lo.noteFailure(hasher, ix)
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
				lo.noteFailure(hasher, nil)
				return nil, err
			}
			p.report(b.members, false)
		}
		if stream, pend, err = ix.FinishPending(); err != nil {
			lo.noteFailure(hasher, nil)
			return nil, err
		}
		if lo.proof != nil {
			lo.proof.DiffID = ix.DiffID()
		}
		if lo.x != "" && ix.DiffID() != lo.x {
			diffErr = fmt.Errorf("%w: uncompressed data is %s, expected %s", ErrDiffIDMismatch, ix.DiffID(), lo.x)
			if lo.proof == nil {
				stream.Close()
				pend.Discard()
				return nil, diffErr
			}
		}
	}
	fail := func(err error) (*Layer, error) {
		stream.Close()
		pend.Discard()
		return nil, err
	}
	if hasher != nil {
		got, err := hasher.wait(func() { p.report(b.members, false) })
		hasher = nil
		if lo.proof != nil && err == nil {
			lo.proof.Digest = got
			if lo.c == compression.None {
				lo.proof.DiffID = got
			}
		}
		switch {
		case err != nil:
			return fail(err)
		case lo.d == "":
		case got != lo.d && diffErr != nil:
			return fail(&mismatchError{fmt.Sprintf("%v: the blob is %s, expected %s; %v", ErrDigestMismatch, got, lo.d, diffErr),
				[]error{ErrDigestMismatch, ErrDiffIDMismatch}})
		case got != lo.d && lo.c == compression.None:
			return fail(&mismatchError{fmt.Sprintf("%v: the uncompressed blob is %s, expected %s", ErrDiffIDMismatch, got, lo.d),
				[]error{ErrDiffIDMismatch, ErrDigestMismatch}})
		case got != lo.d:
			return fail(fmt.Errorf("%w: the blob is %s, expected %s", ErrDigestMismatch, got, lo.d))
		}
	}
	if diffErr != nil {
		return fail(diffErr)
	}
	if lo.proof != nil {
		lo.proof.Indexed = true
	}
	p.done(b.members)
	if lo.source != "" {
		if now, ok := sourceIdentity(blob); !ok || now != lo.source {
			lo.log.Debug("index: blob changed while indexed", "layer", lo.x, "was", lo.source, "now", now)
			return fail(ErrBlobChanged)
		}
	}
	b.logSummary(cmp.Or(lo.x, lo.d))
	// Proven: put the stream index in place, then the table, then the record that vouches for both.
	if err := pend.Commit(); err != nil {
		pend = nil
		return fail(err)
	}
	pend = nil
	info := TableInfo{Key: cmp.Or(lo.x, lo.d), Blob: lo.d, StreamSize: stream.Size(), BlobSize: blob.Size}
	t, err := storeTable(b, info, lo.table, lo.tmpDir)
	if err != nil {
		return fail(err)
	}
	l := &Layer{Table: t, stream: stream, comp: lo.c, src: stampOf(blob.File)}
	if lo.record != "" {
		rec := &verifiedRecord{Digest: lo.d, DiffID: lo.x, Compression: lo.c.String(), Source: lo.source,
			BlobSize: blob.Size, StreamSize: stream.Size(), TableCRC: t.headerCRC()}
		if lo.c != compression.None {
			rec.StreamCRC = stream.IndexCRC()
		}
		if err := writeRecord(lo.record, rec); err != nil {
			log.Warn("index: layer verified but not remembered", "layer", lo.x, "reason", err)
		}
	}
	return l, nil
}

// logSummary reports the build at debug level (its warnings are logged from the table, by Open).
func (b *builder) logSummary(key digest.Digest) {
	b.log.Debug("index: built table", "layer", key, "members", b.members, "entries", b.n, "dropped", b.dropped)
}

// Compression returns how the layer's blob is compressed.
func (l *Layer) Compression() compression.Format { return l.comp }

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
		// Checked after the read: a write to the archive changes its times before its bytes.
		if err := l.src.check(); err != nil {
			return 0, err
		}
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

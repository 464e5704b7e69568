package compression

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
)

const (
	zstdMagic        = 0xfd2fb528
	zstdMaxBlockSize = 128 << 10
	// zstdMaxWindow bounds the memory a frame may ask for (zstd --long=27 and --ultra -22 use 128 MiB).
	zstdMaxWindow = 128 << 20
)

// zstdHugeFrame is the decompressed size above which a frame is too big to decode for every random read:
// a stream with such a frame is served from a decompressed copy. Options.HugeFrame replaces it.
const zstdHugeFrame int64 = 64 << 20

var errZstdFrame = errors.New("compression: invalid zstd frame")

func newZstdDecoder() (*zstd.Decoder, error) {
	return zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(zstdMaxWindow))
}

// zstdLayout is the frame structure of a zstd stream, found by walking frame and block headers without
// decoding: the compressed starts of segments (runs of whole frames of about a quarter of spanSize
// decompressed bytes: restart points need no window, so they can be closer than gzip's) and whether
// some frame is too big to restart in.
type zstdLayout struct {
	segs   []int64
	frames int64
	huge   bool
	out    int64 // decompressed size: exact when every frame declares it, else an upper bound
	exact  bool
}

// zstdWalker reads small pieces of a blob through a buffer, skipping what it does not need: headers of
// small frames share one big read; after a jump past the buffer (a big block) it reads little, so that
// a stream of 128 KiB blocks is not read in full.
type zstdWalker struct {
	r      io.ReaderAt
	base   int64
	size   int64
	buf    []byte
	bufOff int64
	bufLen int
}

// at returns the n bytes at off (relative to the blob).
func (w *zstdWalker) at(off int64, n int) ([]byte, error) {
	if off < 0 || off+int64(n) > w.size {
		return nil, io.ErrUnexpectedEOF
	}
	if off >= w.bufOff && off+int64(n) <= w.bufOff+int64(w.bufLen) {
		return w.buf[off-w.bufOff:][:n], nil
	}
	want := int64(len(w.buf))
	if off-(w.bufOff+int64(w.bufLen)) > 16<<10 {
		want = 512
	}
	m := int(min(want, w.size-off))
	k, err := w.r.ReadAt(w.buf[:m], w.base+off)
	if k < n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	w.bufOff, w.bufLen = off, k
	return w.buf[:n], nil
}

// walkZstd finds the frames of a zstd stream (RFC 8878 section 3.1). It checks only the structure that
// it needs; the decoder checks the rest.
func walkZstd(ctx context.Context, blob Blob, span, hugeFrame int64) (*zstdLayout, error) {
	w := &zstdWalker{r: blob.R, base: blob.Off, size: blob.Size, buf: make([]byte, 64<<10)}
	l := &zstdLayout{segs: []int64{0}, exact: true}
	var segBound int64
	target := max(span/4, 1)
	data := false
	for off, i := int64(0), 0; off < blob.Size; i++ {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		end, bound, skippable, exact, err := walkZstdFrame(w, off)
		if err != nil {
			return nil, fmt.Errorf("zstd frame at %d: %w", off, err)
		}
		if !skippable {
			if data && segBound+bound > target {
				l.segs = append(l.segs, off)
				segBound = 0
			}
			segBound += bound
			data = true
			l.frames++
			l.huge = l.huge || bound > hugeFrame
			l.out += bound
			l.exact = l.exact && exact
		}
		off = end
	}
	return l, nil
}

// walkZstdFrame returns the end of the frame at off and an upper bound of its decompressed size, exact
// when the frame header declares it.
func walkZstdFrame(w *zstdWalker, off int64) (end, bound int64, skippable, exact bool, err error) {
	b, err := w.at(off, 4)
	if err != nil {
		return 0, 0, false, false, err
	}
	if isZstdSkippable(b) {
		b, err := w.at(off+4, 4)
		if err != nil {
			return 0, 0, false, false, err
		}
		end = off + 8 + int64(binary.LittleEndian.Uint32(b))
		if end > w.size {
			return 0, 0, false, false, io.ErrUnexpectedEOF
		}
		return end, 0, true, true, nil
	}
	if binary.LittleEndian.Uint32(b) != zstdMagic {
		return 0, 0, false, false, fmt.Errorf("%w: bad magic %x", errZstdFrame, b)
	}
	b, err = w.at(off+4, 1)
	if err != nil {
		return 0, 0, false, false, err
	}
	fhd := b[0]
	if fhd&0x08 != 0 {
		return 0, 0, false, false, fmt.Errorf("%w: reserved bit set", errZstdFrame)
	}
	single := fhd&0x20 != 0
	p := off + 5
	if !single {
		p++ // window descriptor
	}
	p += [4]int64{0, 1, 2, 4}[fhd&3] // dictionary ID
	fcsSize := [4]int{0, 2, 4, 8}[fhd>>6]
	if fcsSize == 0 && single {
		fcsSize = 1
	}
	fcs := int64(-1)
	if fcsSize > 0 {
		b, err := w.at(p, fcsSize)
		if err != nil {
			return 0, 0, false, false, err
		}
		switch fcsSize {
		case 1:
			fcs = int64(b[0])
		case 2:
			fcs = int64(binary.LittleEndian.Uint16(b)) + 256
		case 4:
			fcs = int64(binary.LittleEndian.Uint32(b))
		case 8:
			fcs = int64(binary.LittleEndian.Uint64(b) & (1<<62 - 1)) // absurd sizes stay positive
		}
		p += int64(fcsSize)
	}
	for {
		b, err := w.at(p, 3)
		if err != nil {
			return 0, 0, false, false, err
		}
		bh := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
		size := int64(bh >> 3)
		switch (bh >> 1) & 3 {
		case 0: // raw
			p += 3 + size
			bound += size
		case 1: // RLE: one byte repeated size times
			p += 3 + 1
			bound += size
		case 2: // compressed
			p += 3 + size
			bound += zstdMaxBlockSize
		default:
			return 0, 0, false, false, fmt.Errorf("%w: reserved block type", errZstdFrame)
		}
		if p > w.size {
			return 0, 0, false, false, io.ErrUnexpectedEOF
		}
		if bh&1 != 0 {
			break
		}
	}
	if fhd&0x04 != 0 {
		p += 4 // content checksum
	}
	if p > w.size {
		return 0, 0, false, false, io.ErrUnexpectedEOF
	}
	if fcs >= 0 {
		bound = fcs
	}
	return p, bound, false, fcs >= 0, nil
}

// zstdIndexer decodes a zstd stream segment by segment, recording each segment's decompressed offset.
// A stream with a huge frame is instead decoded in one go into a decompressed copy.
type zstdIndexer struct {
	blob   Blob
	opts   Options
	layout *zstdLayout
	dec    *zstd.Decoder
	src    rangeReader
	seg    int
	points []point
	out    int64

	idxPath string // .zti; "" when not persisted
	rawPath string // .raw; "" when not persisted
	raw     *os.File
	rawW    *bufio.Writer
	// announce reports the decompressed copy once written, with its size.
	announce func(size int64)
}

// mib formats a byte count in MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func newZstdIndexer(ctx context.Context, blob Blob, opts Options) (*zstdIndexer, error) {
	idxPath, persist, err := cachePaths(opts, persisted[Zstd].ext)
	if err != nil {
		return nil, err
	}
	layout, err := walkZstd(ctx, blob, opts.span(), opts.hugeFrame())
	if err != nil {
		return nil, err
	}
	dec, err := newZstdDecoder()
	if err != nil {
		return nil, err
	}
	z := &zstdIndexer{blob: blob, opts: opts, layout: layout, dec: dec}
	if persist {
		z.idxPath = idxPath
		z.rawPath, _, _ = cachePaths(opts, ".raw")
	}
	end := blob.Size
	if layout.huge {
		if z.raw, err = createTemp(z.rawPath, opts.CacheDir, "raw-*"); err != nil {
			dec.Close()
			return nil, fmt.Errorf("creating decompressed copy: %w", err)
		}
		z.rawW = bufio.NewWriterSize(z.raw, 256<<10)
		where := z.rawPath
		if where == "" {
			where = "an unlinked file in " + cmp.Or(opts.CacheDir, os.TempDir())
		}
		key := string(opts.Key)
		if key == "" {
			key = "(unkeyed)"
		}
		// Said at the default level: the copy costs as much disk as the layer's uncompressed size.
		why := "it is one frame"
		if layout.frames > 1 {
			why = fmt.Sprintf("it has frames over %d MiB", opts.hugeFrame()>>20)
		}
		size := "at most " + mib(layout.out)
		if layout.exact {
			size = mib(layout.out)
		}
		opts.logger().Warn(fmt.Sprintf("compression: zstd layer has no restart points (%s): writing a decompressed copy of %s to the cache",
			why, size), "layer", key, "path", where)
		z.announce = func(n int64) {
			opts.logger().Warn(fmt.Sprintf("compression: wrote a decompressed copy of %s of zstd layer", mib(n)), "layer", key,
				"path", where, "bytes", n)
		}
	} else {
		z.points = []point{{}}
		if len(layout.segs) > 1 {
			end = layout.segs[1]
		}
	}
	z.src = rangeReader{r: blob.R, off: blob.Off, end: blob.Off + end}
	if err := dec.Reset(&z.src); err != nil {
		z.close()
		return nil, err
	}
	return z, nil
}

func (z *zstdIndexer) consumed() int64 { return z.src.off - z.blob.Off }

func (z *zstdIndexer) read(p []byte) (int, error) {
	for {
		n, err := z.dec.Read(p)
		z.out += int64(n)
		if z.rawW != nil && n > 0 {
			if _, werr := z.rawW.Write(p[:n]); werr != nil {
				return n, fmt.Errorf("writing decompressed copy: %w", werr)
			}
		}
		if err == io.EOF {
			err = z.nextSegment()
		} else if err != nil {
			err = fmt.Errorf("zstd segment at %d: %w", z.segStart(), err)
		}
		if err != nil || n > 0 {
			return n, err
		}
	}
}

func (z *zstdIndexer) segStart() int64 {
	if z.layout.huge {
		return 0
	}
	return z.layout.segs[z.seg]
}

// nextSegment starts decoding the next segment, or returns io.EOF after the last.
func (z *zstdIndexer) nextSegment() error {
	if z.layout.huge || z.seg+1 >= len(z.layout.segs) {
		if z.src.off != z.src.end {
			return fmt.Errorf("zstd segment at %d: %w: data after the last frame", z.segStart(), errZstdFrame)
		}
		return io.EOF
	}
	z.seg++
	start, end := z.layout.segs[z.seg], z.blob.Size
	if z.seg+1 < len(z.layout.segs) {
		end = z.layout.segs[z.seg+1]
	}
	z.points = append(z.points, point{Out: z.out, In: start})
	z.src = rangeReader{r: z.blob.R, off: z.blob.Off + start, end: z.blob.Off + end}
	return z.dec.Reset(&z.src)
}

func (z *zstdIndexer) finish(size int64, diffID digest.Digest) (*Stream, Pending, error) {
	h := newStreamHeader(Zstd, z.opts, z.blob.Size, size, diffID)
	var (
		s *Stream
		p Pending
	)
	if z.raw != nil {
		if err := z.rawW.Flush(); err != nil {
			return nil, nil, fmt.Errorf("writing decompressed copy: %w", err)
		}
		raw, err := rawIdentity(z.raw)
		if err != nil {
			return nil, nil, fmt.Errorf("writing decompressed copy: %w", err)
		}
		if z.rawPath != "" {
			p = append(p, pendingFile{f: z.raw, path: z.rawPath})
		}
		h.Flags = streamFlagRaw
		h.Raw = raw
		if z.announce != nil {
			z.announce(size)
		}
		s = newFileStream(Zstd, z.raw, size, diffID)
		z.raw = nil
	} else {
		s = newZstdStream(z.blob, z.points, size, diffID)
	}
	if z.idxPath != "" {
		w, err := newIndexWriter(z.idxPath, "")
		if err != nil {
			p.Discard()
			s.Close()
			return nil, nil, err
		}
		f, q, err := w.finish(h, s.points)
		if err != nil {
			w.abort()
			p.Discard()
			s.Close()
			return nil, nil, err
		}
		q[0].close = true
		p = append(p, q...)
		_ = f
	} else {
		h.encode() // sets h.crc
	}
	s.hdrCRC = h.crc
	z.opts.logger().Debug("indexed zstd stream", "key", z.opts.Key, "size", size, "frames", z.layout.frames,
		"points", len(s.points), "copy", h.Flags&streamFlagRaw != 0, "persisted", z.idxPath != "")
	return s, p, nil
}

func (z *zstdIndexer) close() {
	if z.dec != nil {
		z.dec.Close()
		z.dec = nil
	}
	if z.raw != nil {
		if z.rawPath != "" {
			os.Remove(z.raw.Name())
		}
		z.raw.Close()
		z.raw = nil
	}
}

func newZstdStream(blob Blob, points []point, size int64, diffID digest.Digest) *Stream {
	s := &Stream{c: Zstd, size: size, diffID: diffID, points: points, lru: idleZstd}
	s.newCursor = func() cursor { return &zstdCursor{blob: blob} }
	return s
}

// zstdFromIndex makes the stream of a validated .zti file (which holds no windows: it is closed), from
// its restart points or from the decompressed copy it names.
func zstdFromIndex(blob Blob, li *loadedIndex, opts Options) (*Stream, error) {
	li.f.Close()
	h := &li.hdr
	diffID := diffIDFromBytes(h.DiffID)
	switch {
	case h.Flags == 0:
		if len(li.points) == 0 && h.Size != 0 {
			return nil, fmt.Errorf("%w: no points", errStale)
		}
		return newZstdStream(blob, li.points, h.Size, diffID), nil
	case h.Flags == streamFlagRaw:
		rawPath, _, _ := cachePaths(opts, ".raw")
		f, err := os.Open(rawPath)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("%w: decompressed copy missing", errStale)
			}
			return nil, err
		}
		fi, err := f.Stat()
		if err != nil || fi.Size() != h.Size {
			f.Close()
			if err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%w: decompressed copy has %d bytes, want %d", errStale, fi.Size(), h.Size)
		}
		// The copy is too big to checksum on every open; a change to it (an edit by hand) changes its
		// identity, which the index recorded when it was written.
		if raw, err := rawIdentity(f); err != nil || raw != h.Raw {
			f.Close()
			if err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%w: decompressed copy changed since it was written", errStale)
		}
		return newFileStream(Zstd, f, h.Size, diffID), nil
	}
	return nil, fmt.Errorf("%w: bad zstd index flags", errStale)
}

// zstdCursor decodes a zstd stream from a segment start onwards.
type zstdCursor struct {
	blob Blob
	src  rangeReader
	dec  *zstd.Decoder
	out  int64
}

func (c *zstdCursor) pos() int64 { return c.out }

func (c *zstdCursor) reset(pt *point) error {
	if c.dec == nil {
		dec, err := newZstdDecoder()
		if err != nil {
			return err
		}
		c.dec = dec
	}
	c.src = rangeReader{r: c.blob.R, off: c.blob.Off + pt.In, end: c.blob.Off + c.blob.Size}
	c.out = pt.Out
	return c.dec.Reset(&c.src)
}

func (c *zstdCursor) Read(p []byte) (int, error) {
	n, err := c.dec.Read(p)
	c.out += int64(n)
	return n, err
}

func (c *zstdCursor) close() {
	if c.dec != nil {
		c.dec.Close()
		c.dec = nil
	}
}

var _ cursor = (*zstdCursor)(nil)

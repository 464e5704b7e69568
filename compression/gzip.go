package compression

import (
	"bufio"
	"bytes"
	stdflate "compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"

	"github.com/imgfs/imgfs/compression/internal/flate"
	"github.com/opencontainers/go-digest"
)

// gzip header flags, RFC 1952 section 2.3.1.
const (
	gzipFlagHCRC    = 1 << 1
	gzipFlagExtra   = 1 << 2
	gzipFlagName    = 1 << 3
	gzipFlagComment = 1 << 4
)

var (
	errGzipHeader   = errors.New("compression: invalid gzip header")
	errGzipChecksum = errors.New("compression: gzip checksum mismatch")
	errGzipEmpty    = errors.New("compression: gzip stream has no member")
)

// noEOF turns io.EOF into io.ErrUnexpectedEOF: the stream ended inside a structure.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readGzipHeader reads one member header (RFC 1952 section 2.3), skipping FEXTRA, FNAME and FCOMMENT
// and verifying FHCRC.
func readGzipHeader(br *bufio.Reader) error {
	buf, err := peekN(br, 10)
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(buf, magicGzip) {
		return errGzipHeader
	}
	flg := buf[3]
	crc := crc32.ChecksumIEEE(buf)
	br.Discard(10)
	if flg&gzipFlagExtra != 0 {
		buf, err := peekN(br, 2)
		if err != nil {
			return err
		}
		crc = crc32.Update(crc, crc32.IEEETable, buf)
		n := int(binary.LittleEndian.Uint16(buf))
		br.Discard(2)
		if crc, err = skipCRC(br, n, crc); err != nil {
			return err
		}
	}
	for _, f := range []byte{gzipFlagName, gzipFlagComment} {
		if flg&f != 0 {
			if crc, err = skipString(br, crc); err != nil {
				return err
			}
		}
	}
	if flg&gzipFlagHCRC != 0 {
		buf, err := peekN(br, 2)
		if err != nil {
			return err
		}
		if binary.LittleEndian.Uint16(buf) != uint16(crc) {
			return fmt.Errorf("%w: header checksum mismatch", errGzipHeader)
		}
		br.Discard(2)
	}
	return nil
}

// peekN returns the next n bytes of br without consuming them (n is at most the buffer size). It does
// not allocate, unlike io.ReadFull into a local array, which escapes.
func peekN(br *bufio.Reader, n int) ([]byte, error) {
	b, err := br.Peek(n)
	if len(b) < n {
		return nil, noEOF(err)
	}
	return b, nil
}

// skipCRC skips n bytes, adding them to crc.
func skipCRC(br *bufio.Reader, n int, crc uint32) (uint32, error) {
	for n > 0 {
		b, err := br.Peek(min(n, br.Size()))
		crc = crc32.Update(crc, crc32.IEEETable, b)
		br.Discard(len(b))
		n -= len(b)
		if n > 0 && err != nil {
			return crc, noEOF(err)
		}
	}
	return crc, nil
}

// skipString skips a zero-terminated string, adding it to crc.
func skipString(br *bufio.Reader, crc uint32) (uint32, error) {
	for {
		b, err := br.ReadSlice(0)
		crc = crc32.Update(crc, crc32.IEEETable, b)
		if err == nil {
			return crc, nil
		}
		if err != bufio.ErrBufferFull {
			return crc, noEOF(err)
		}
	}
}

// gzipIndexer decompresses a gzip stream (any number of members), verifying every member's trailer
// and recording a restart point at a block boundary about every spanSize bytes of output, with the
// window needed to resume there.
type gzipIndexer struct {
	blob Blob
	opts Options
	src  rangeReader
	br   *bufio.Reader
	w    *indexWriter

	fr     *flate.Reader
	win    []byte // scratch for windows
	member bool   // inside a member's deflate data
	done   bool

	members   int64
	dataStart int64 // blob offset of the current member's deflate data
	memberOut int64 // uncompressed offset of the current member's first byte
	crc       uint32
	isize     uint32
	out       int64
	lastPoint int64
	points    []point
	err       error // from onBlock
	wz        *stdflate.Writer
	wbuf      bytes.Buffer // a deflated window
}

func newGzipIndexer(ctx context.Context, blob Blob, opts Options) (*gzipIndexer, error) {
	path, _, err := cachePaths(opts, persisted[Gzip].ext)
	if err != nil {
		return nil, err
	}
	w, err := newIndexWriter(path, opts.CacheDir)
	if err != nil {
		return nil, err
	}
	g := &gzipIndexer{blob: blob, opts: opts, w: w, fr: flate.NewReader()}
	g.fr.SetBlockHook(g.onBlock)
	g.src = rangeReader{r: blob.R, off: blob.Off, end: blob.Off + blob.Size}
	g.br = bufio.NewReaderSize(&g.src, 256<<10)
	return g, nil
}

func (g *gzipIndexer) consumed() int64 {
	return g.src.off - g.blob.Off - int64(g.br.Buffered())
}

func (g *gzipIndexer) read(p []byte) (int, error) {
	for {
		if g.err != nil {
			return 0, g.err
		}
		if !g.member {
			if err := g.startMember(); err != nil {
				return 0, err
			}
		}
		n, err := g.fr.Read(p)
		g.crc = crc32.Update(g.crc, crc32.IEEETable, p[:n])
		g.isize += uint32(n)
		g.out += int64(n)
		if err == io.EOF {
			err = g.endMember()
		} else if err != nil {
			err = fmt.Errorf("gzip member at %d: %w", g.dataStart, err)
		}
		if err != nil {
			g.err = err
			return n, err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// startMember reads the next member's header, or reports the end of the stream.
func (g *gzipIndexer) startMember() error {
	if g.done {
		return io.EOF
	}
	start := g.consumed()
	if _, err := g.br.Peek(1); err == io.EOF {
		g.done = true
		if g.members == 0 {
			return errGzipEmpty
		}
		return io.EOF
	} else if err != nil {
		return err
	}
	if err := readGzipHeader(g.br); err != nil {
		return fmt.Errorf("gzip member at %d: %w", start, err)
	}
	if g.members == 0 || g.out-g.lastPoint >= g.opts.span() {
		g.points = append(g.points, point{Out: g.out, In: start, Flags: pointFlagMember})
		g.lastPoint = g.out
	}
	g.members++
	g.dataStart = g.consumed()
	g.memberOut = g.out
	g.crc, g.isize = 0, 0
	g.fr.Reset(g.br)
	g.member = true
	return nil
}

// endMember verifies the trailer of the member whose deflate data just ended.
func (g *gzipIndexer) endMember() error {
	g.member = false
	buf, err := peekN(g.br, 8)
	if err != nil {
		return fmt.Errorf("gzip member at %d: trailer: %w", g.dataStart, err)
	}
	if binary.LittleEndian.Uint32(buf[:4]) != g.crc || binary.LittleEndian.Uint32(buf[4:]) != g.isize {
		return fmt.Errorf("gzip member at %d: %w", g.dataStart, errGzipChecksum)
	}
	g.br.Discard(8)
	return nil
}

// onBlock is called by the decompressor at the end of every deflate block.
func (g *gzipIndexer) onBlock(b flate.BlockEnd) {
	out := g.memberOut + b.Out
	if b.Final || g.err != nil || out-g.lastPoint < g.opts.span() {
		return
	}
	g.win = g.fr.AppendWindow(g.win[:0])
	stored, flags := g.deflateWindow(g.win)
	off, crc, err := g.w.appendWindow(stored)
	if err != nil {
		g.err = err
		return
	}
	g.points = append(g.points, point{
		Out:    out,
		In:     g.dataStart + b.In,
		Bits:   b.Bits,
		WinOff: off,
		WinLen: uint32(len(stored)),
		WinCRC: crc,
		Flags:  flags,
	})
	g.lastPoint = out
}

func (g *gzipIndexer) finish(size int64, diffID digest.Digest) (*Stream, Pending, error) {
	h := newStreamHeader(Gzip, g.opts, g.blob.Size, size, diffID)
	f, p, err := g.w.finish(h, g.points)
	if err != nil {
		return nil, nil, err
	}
	g.opts.logger().Debug("indexed gzip stream", "key", g.opts.Key, "size", size, "members", g.members,
		"points", len(g.points), "persisted", g.w.path != "")
	s := newGzipStream(g.blob, f, g.points, size, diffID)
	s.hdrCRC = h.crc
	return s, p, nil
}

func (g *gzipIndexer) close() {
	g.w.abort()
}

func newGzipStream(blob Blob, ckpt *os.File, points []point, size int64, diffID digest.Digest) *Stream {
	s := &Stream{c: Gzip, size: size, diffID: diffID, points: points, ckpt: ckpt, lru: idleGzip}
	s.newCursor = func() cursor { return newGzipCursor(blob, ckpt) }
	return s
}

// gzipFromIndex makes the stream of a validated .gzi file, which it takes over.
func gzipFromIndex(blob Blob, li *loadedIndex, _ Options) (*Stream, error) {
	if li.hdr.Flags != 0 || len(li.points) == 0 {
		li.f.Close()
		return nil, fmt.Errorf("%w: bad gzip index", errStale)
	}
	return newGzipStream(blob, li.f, li.points, li.hdr.Size, diffIDFromBytes(li.hdr.DiffID)), nil
}

// gzipCursor decodes a gzip stream from a restart point onwards, across member boundaries. It does not
// verify trailers: it usually starts inside a member.
type gzipCursor struct {
	blob   Blob
	ckpt   *os.File
	src    rangeReader
	br     *bufio.Reader
	fr     *flate.Reader
	out    int64
	member bool
}

func newGzipCursor(blob Blob, ckpt *os.File) *gzipCursor {
	return &gzipCursor{blob: blob, ckpt: ckpt, br: bufio.NewReaderSize(nil, 32<<10), fr: flate.NewReader()}
}

func (c *gzipCursor) pos() int64 { return c.out }
func (c *gzipCursor) close()     {}

func (c *gzipCursor) reset(pt *point) error {
	c.src = rangeReader{r: c.blob.R, off: c.blob.Off + pt.In, end: c.blob.Off + c.blob.Size}
	c.br.Reset(&c.src)
	c.out = pt.Out
	c.member = false
	if pt.Flags&pointFlagMember != 0 {
		return nil
	}
	bp := scratchPool.Get().(*[]byte)
	defer scratchPool.Put(bp)
	win := (*bp)[:pt.WinLen]
	if _, err := c.ckpt.ReadAt(win, pt.WinOff); err != nil {
		return fmt.Errorf("reading restart window: %w", noEOF(err))
	}
	if crc32.Checksum(win, castagnoli) != pt.WinCRC {
		return errors.New("compression: restart window checksum mismatch")
	}
	if pt.Flags&pointFlagDeflated != 0 {
		wp := scratchPool.Get().(*[]byte)
		defer scratchPool.Put(wp)
		var err error
		if win, err = inflateWindow((*wp)[:windowSize], win); err != nil {
			return err
		}
	}
	if err := c.fr.Resume(c.br, pt.Bits, win); err != nil {
		return err
	}
	c.member = true
	return nil
}

func (c *gzipCursor) Read(p []byte) (int, error) {
	for {
		if !c.member {
			if _, err := c.br.Peek(1); err != nil {
				return 0, err // io.EOF: the end of the stream
			}
			if err := readGzipHeader(c.br); err != nil {
				return 0, err
			}
			c.fr.Reset(c.br)
			c.member = true
		}
		n, err := c.fr.Read(p)
		c.out += int64(n)
		if err == io.EOF {
			c.member = false
			if _, err = peekN(c.br, 8); err == nil {
				c.br.Discard(8)
			}
		}
		if err != nil || n > 0 {
			return n, err
		}
	}
}

var _ cursor = (*gzipCursor)(nil)

// deflateWindow returns how a restart window is stored: deflated (level 1) when that is smaller, as it
// is for anything but incompressible data, else as it is.
func (g *gzipIndexer) deflateWindow(win []byte) ([]byte, uint8) {
	if g.wz == nil {
		g.wz, _ = stdflate.NewWriter(&g.wbuf, stdflate.BestSpeed)
	}
	g.wbuf.Reset()
	g.wz.Reset(&g.wbuf)
	g.wz.Write(win) // a bytes.Buffer never fails
	g.wz.Close()
	if g.wbuf.Len() >= len(win) {
		return win, 0
	}
	return g.wbuf.Bytes(), pointFlagDeflated
}

var inflaters = sync.Pool{New: func() any { return stdflate.NewReader(nil) }}

// inflateWindow decodes a deflated restart window into dst (windowSize bytes) and returns the window.
func inflateWindow(dst, stored []byte) ([]byte, error) {
	r := inflaters.Get().(io.ReadCloser)
	defer inflaters.Put(r)
	if err := r.(stdflate.Resetter).Reset(bytes.NewReader(stored), nil); err != nil {
		return nil, err
	}
	n, err := io.ReadFull(r, dst)
	switch err {
	case io.ErrUnexpectedEOF:
	case nil:
		// A full window: the stream must end here.
		var one [1]byte
		if m, _ := r.Read(one[:]); m != 0 {
			return nil, errors.New("compression: restart window too long")
		}
	default:
		return nil, fmt.Errorf("compression: restart window: %w", err)
	}
	return dst[:n], nil
}

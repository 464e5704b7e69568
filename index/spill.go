package index

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// The build keeps in memory only what the scan looks up (bnode) and the names; the rest of each
// member's metadata is appended to a spill file as it is set, and put in table order when the table is
// written: the spill is read once to count, once to sort its records into buckets of table IDs (one
// window each), and each bucket is read once while its window of records is written. Memory stays at
// ~20 bytes an entry plus the names and the layout (16 bytes an entry), whatever the layer's size.

// cold is the metadata of a node that the scan never reads back.
type cold struct {
	mode, uid, gid, nsec uint32
	sec, size            int64
	x                    uint64 // regular: data offset; char/block: major | minor<<32
	xattrOff, sparseOff  uint32
}

// A coldRec in the spill (and in the buckets) is u32 node (table ID in a bucket), then coldPay bytes:
// u32 mode, u32 uid, u32 gid, u32 nsec, i64 sec, i64 size, u64 x, u32 xattr offset, u32 sparse offset.
const (
	coldPay  = 48
	coldSize = 4 + coldPay
	// spillMem is the in-memory part of a spill: a build that sets fewer records creates no file.
	spillMem = (1 << 20) / coldSize * coldSize
)

// coldWindow is the number of table IDs whose cold metadata is held at once while the table is written
// (a variable for tests); a layer gets at most maxWindows windows, so that huge ones keep few buckets.
const coldWindow = 1 << 16

const maxWindows = 64

func (c *cold) encode(dst []byte) {
	le := binary.LittleEndian
	le.PutUint32(dst[0:], c.mode)
	le.PutUint32(dst[4:], c.uid)
	le.PutUint32(dst[8:], c.gid)
	le.PutUint32(dst[12:], c.nsec)
	le.PutUint64(dst[16:], uint64(c.sec))
	le.PutUint64(dst[24:], uint64(c.size))
	le.PutUint64(dst[32:], c.x)
	le.PutUint32(dst[40:], c.xattrOff)
	le.PutUint32(dst[44:], c.sparseOff)
}

func decodeCold(src []byte) cold {
	le := binary.LittleEndian
	return cold{
		mode: le.Uint32(src[0:]), uid: le.Uint32(src[4:]), gid: le.Uint32(src[8:]), nsec: le.Uint32(src[12:]),
		sec: int64(le.Uint64(src[16:])), size: int64(le.Uint64(src[24:])), x: le.Uint64(src[32:]),
		xattrOff: le.Uint32(src[40:]), sparseOff: le.Uint32(src[44:]),
	}
}

// defaultCold is the metadata of a node no member set: an implied directory (or the implied root).
var defaultCold = cold{mode: 0o755}

// spill is an append-only sequence of coldRecs: in memory up to spillMem bytes, then in an unlinked
// temporary file.
type spill struct {
	dir string // where the file goes; "": the system's temporary directory
	f   *os.File
	mem []byte // records not yet written to f
	off int64  // bytes in f
}

func (s *spill) put(node uint32, c *cold) error {
	if len(s.mem)+coldSize > spillMem {
		if err := s.flush(); err != nil {
			return err
		}
	}
	if s.mem == nil {
		s.mem = make([]byte, 0, spillMem)
	}
	n := len(s.mem)
	s.mem = s.mem[:n+coldSize]
	binary.LittleEndian.PutUint32(s.mem[n:], node)
	c.encode(s.mem[n+4:])
	return nil
}

// flush moves the records held in memory to the file, creating it.
func (s *spill) flush() error {
	if len(s.mem) == 0 {
		return nil
	}
	if s.f == nil {
		f, err := createUnlinked(s.dir, ".spill-*.tmp")
		if err != nil {
			return fmt.Errorf("creating spill file: %w", err)
		}
		s.f = f
	}
	if _, err := s.f.WriteAt(s.mem, s.off); err != nil {
		return fmt.Errorf("writing spill file: %w", err)
	}
	s.off += int64(len(s.mem))
	s.mem = s.mem[:0]
	return nil
}

// each calls fn with every record, in the order they were put.
func (s *spill) each(fn func(rec []byte) error) error {
	if s.f == nil {
		for o := 0; o < len(s.mem); o += coldSize {
			if err := fn(s.mem[o : o+coldSize]); err != nil {
				return err
			}
		}
		return nil
	}
	if err := s.flush(); err != nil {
		return err
	}
	if s.mem == nil {
		s.mem = make([]byte, 0, spillMem)
	}
	return eachRec(s.f, 0, s.off, s.mem[:spillMem], fn)
}

// eachRec calls fn with every coldRec in n bytes of f at off, read through buf.
func eachRec(f *os.File, off, n int64, buf []byte, fn func(rec []byte) error) error {
	buf = buf[:len(buf)/coldSize*coldSize]
	for n > 0 {
		k := int(min(int64(len(buf)), n))
		if _, err := f.ReadAt(buf[:k], off); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("reading spill file: %w", err)
		}
		for o := 0; o < k; o += coldSize {
			if err := fn(buf[o : o+coldSize]); err != nil {
				return err
			}
		}
		off += int64(k)
		n -= int64(k)
	}
	return nil
}

func (s *spill) close() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	s.mem = nil
}

// createUnlinked creates a temporary file in dir and removes its name: it disappears with its last
// descriptor, even when the process dies.
func createUnlinked(dir, pattern string) (*os.File, error) {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// dest returns the table ID whose record carries the cold metadata of node k: its own, or, for a
// hardlink target replaced later in the layer, that of the hardlink carrying its data (whose own
// metadata is then not used).
func (l *layout) dest(b *builder, k uint32) (uint32, bool) {
	if id := l.newID[k]; id != noNode {
		if l.carrier != nil && l.isCarrier(b, k) {
			return 0, false
		}
		return id, true
	}
	if c, ok := l.carrier[k]; ok {
		return l.newID[c], true
	}
	return 0, false
}

// coldWindows calls fn for consecutive windows of table IDs, lowest first, with the cold metadata of
// the window's entries (coldPay bytes each, in ID order): the last record of each, or defaultCold.
func (b *builder) coldWindows(l *layout, fn func(lo int, buf []byte) error) error {
	n := len(l.order)
	w := coldWindow
	if b.coldWindow > 0 {
		w = b.coldWindow
	}
	win := max(w, (n+maxWindows-1)/maxWindows)
	nwin := (n + win - 1) / win
	buf := make([]byte, min(n, win)*coldPay)
	reset := func(k int) {
		for i := range k {
			defaultCold.encode(buf[i*coldPay:])
		}
	}
	if nwin == 1 {
		reset(n)
		err := b.spill.each(func(rec []byte) error {
			if id, ok := l.dest(b, binary.LittleEndian.Uint32(rec)); ok {
				copy(buf[int(id)*coldPay:], rec[4:])
			}
			return nil
		})
		if err != nil {
			return err
		}
		return fn(0, buf[:n*coldPay])
	}

	// Count the records of each window, then write them into the window's bucket, a region of one
	// file, with the node replaced by its table ID.
	counts := make([]int64, nwin)
	err := b.spill.each(func(rec []byte) error {
		if id, ok := l.dest(b, binary.LittleEndian.Uint32(rec)); ok {
			counts[int(id)/win]++
		}
		return nil
	})
	if err != nil {
		return err
	}
	offs := make([]int64, nwin+1)
	for w := range nwin {
		offs[w+1] = offs[w] + counts[w]*coldSize
	}
	bf, err := createUnlinked(b.spill.dir, ".spill-*.tmp")
	if err != nil {
		return fmt.Errorf("creating spill file: %w", err)
	}
	defer bf.Close()
	const bucketBuf = (16 << 10) / coldSize * coldSize
	bufs := make([][]byte, nwin)
	pos := make([]int64, nwin)
	copy(pos, offs)
	put := func(w int) error {
		if _, err := bf.WriteAt(bufs[w], pos[w]); err != nil {
			return fmt.Errorf("writing spill file: %w", err)
		}
		pos[w] += int64(len(bufs[w]))
		bufs[w] = bufs[w][:0]
		return nil
	}
	err = b.spill.each(func(rec []byte) error {
		id, ok := l.dest(b, binary.LittleEndian.Uint32(rec))
		if !ok {
			return nil
		}
		w := int(id) / win
		if bufs[w] == nil {
			bufs[w] = make([]byte, 0, bucketBuf)
		}
		bufs[w] = binary.LittleEndian.AppendUint32(bufs[w], id)
		bufs[w] = append(bufs[w], rec[4:]...)
		if len(bufs[w]) == bucketBuf {
			return put(w)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for w := range nwin {
		if err := put(w); err != nil {
			return err
		}
		bufs[w] = nil
	}
	rd := make([]byte, spillMem)
	for w := range nwin {
		lo := w * win
		k := min(win, n-lo)
		reset(k)
		err := eachRec(bf, offs[w], offs[w+1]-offs[w], rd, func(rec []byte) error {
			j := int(binary.LittleEndian.Uint32(rec)) - lo
			copy(buf[j*coldPay:], rec[4:])
			return nil
		})
		if err != nil {
			return err
		}
		if err := fn(lo, buf[:k*coldPay]); err != nil {
			return err
		}
	}
	return nil
}

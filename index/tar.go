package index

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Errors reported by the tar scanner. They are wrapped with the stream offset of the offending header.
var (
	// ErrNotTar means the stream does not start with a tar header.
	ErrNotTar = errors.New("index: not a tar archive")
	// ErrTarHeader means a header is malformed: bad checksum, bad number, bad PAX record, bad sparse map.
	ErrTarHeader = errors.New("index: invalid tar header")
	// ErrTarTruncated means the stream ends inside a header or inside a member's data.
	ErrTarTruncated = errors.New("index: truncated tar archive")
	// ErrTarLimit means a member exceeds a limit kept against hostile archives (PAX header size, name
	// length, sparse map size).
	ErrTarLimit = errors.New("index: tar limit exceeded")
)

// Limits against hostile archives.
const (
	tarBlock = 512
	// maxPAXSize bounds a PAX extended header ('x' or 'g').
	maxPAXSize = 1 << 20
	// maxNameLen bounds a member name or link target (GNU 'L'/'K' data, PAX path and linkpath). It is
	// also the largest length the table can store.
	maxNameLen = 1<<16 - 1
	// maxSparseRegions bounds the sparse map of one member.
	maxSparseRegions = 1 << 18
	// maxSparseMapSize bounds the bytes read for one sparse map (PAX 1.0 map text, old GNU extension
	// headers).
	maxSparseMapSize = 1 << 20
)

// Scanner buffer sizes. Headers are read through the buffer; after a reposition over member data the
// next read is small and reads double while the scan stays sequential (see BenchmarkScanBuffer).
const (
	scanBufSize  = 256 << 10
	scanMinChunk = 16 << 10
)

// tarXattr is one extended attribute of a member; its slices are valid until the next call to Next.
type tarXattr struct {
	Name, Value []byte
}

// tarMember is one member reported by the scanner. Its slices are valid until the next call to Next.
type tarMember struct {
	Name      []byte // as stored (PAX path, GNU long name, ustar prefix/name); not normalised
	LinkName  []byte // as stored
	Flag      byte   // typeflag, after the legacy rule that '\x00' with a trailing slash is a directory
	Type      Type
	Mode      uint32 // 07777 bits
	UID, GID  uint32
	Size      int64 // regular files: logical size (sparse: expanded); 0 for the other types
	MtimeSec  int64
	MtimeNsec uint32
	Devmajor  uint32
	Devminor  uint32
	Xattrs    []tarXattr
	Header    int64          // stream offset of the member's first header block (its PAX/GNU headers)
	Offset    int64          // stream offset of the first data byte (after a PAX 1.0 sparse map)
	Stored    int64          // data bytes stored at Offset
	Sparse    []SparseRegion // non-nil for sparse files; zero-length regions dropped
	times     [2]paxTime     // PAX atime and ctime, when the member has them
}

// paxTime is a PAX atime or ctime record.
type paxTime struct {
	sec  int64
	nsec uint32
	set  bool
}

// tarScanner reads tar headers in one pass over a stream. It reads from an io.ReaderAt when it can
// reposition over member data, or from an io.Reader whose data it discards.
type tarScanner struct {
	ra    io.ReaderAt
	base  int64 // offset of the stream in ra
	size  int64 // stream size (ReaderAt mode)
	rd    io.Reader
	rdEnd bool // rd reported EOF

	buf   []byte
	r, w  int
	pos   int64 // stream offset of buf[r]
	chunk int   // next read size (ReaderAt mode)

	// onRead is called after every read from the underlying source with the stream position reached;
	// an error stops the scan.
	onRead func(pos int64) error

	padSkip  int64 // padding of the previous member, skipped before the next header
	dataSkip int64 // data of the previous member not consumed yet
	headers  int64 // header blocks seen
	err      error

	m         tarMember
	nameBuf   []byte
	linkBuf   []byte
	longName  []byte // pending GNU 'L'
	longLink  []byte // pending GNU 'K'
	hasLongN  bool
	hasLongL  bool
	paxBuf    []byte
	pax       paxState
	xattrBuf  []byte
	xattrRefs []xattrRef
	xattrs    []tarXattr
	sparse    []SparseRegion
	sparse0   []byte // GNU.sparse.offset/numbytes records joined as a 0.1 map
	sparse0n  int    // numbers in sparse0
	tok       []byte
}

type xattrRef struct{ off, nameLen, valueLen int }

// paxState holds the records of the pending PAX 'x' header; slices point into paxBuf.
type paxState struct {
	set                                      bool
	path, linkpath                           []byte
	size, uid, gid, mtime, atime, ctime      []byte
	spMajor, spMinor, spName, spSize, spReal []byte
	spMap, spNumBlocks                       []byte
	hasSpMap                                 bool
	aclAccess, aclDefault                    []byte // SCHILY.acl.* text (see addTextACLs)
}

func newScannerAt(ra io.ReaderAt, off, size int64) *tarScanner {
	return &tarScanner{ra: ra, base: off, size: size, buf: make([]byte, scanBufSize), chunk: scanMinChunk}
}

func newScanner(r io.Reader) *tarScanner {
	return &tarScanner{rd: r, buf: make([]byte, scanBufSize)}
}

// Pos returns the stream offset reached.
func (s *tarScanner) Pos() int64 { return s.pos }

// Next returns the next member, or io.EOF at the end of the archive.
func (s *tarScanner) Next() (*tarMember, error) {
	if s.err != nil {
		return nil, s.err
	}
	m, err := s.next()
	if err != nil {
		s.err = err
		return nil, err
	}
	return m, nil
}

// avail returns the buffered byte count.
func (s *tarScanner) avail() int { return s.w - s.r }

// fill tries to buffer at least n bytes (n <= len(buf)); fewer are buffered only at the end of the stream.
func (s *tarScanner) fill(n int) error {
	if s.w-s.r >= n {
		return nil
	}
	if s.r > 0 {
		copy(s.buf, s.buf[s.r:s.w])
		s.w -= s.r
		s.r = 0
	}
	if s.ra != nil {
		end := s.pos + int64(s.w) // stream offset of buf[w]
		want := max(n-s.w, s.chunk)
		want = min(want, len(s.buf)-s.w)
		if rest := s.size - end; int64(want) > rest {
			want = int(max(rest, 0))
		}
		if want > 0 {
			got, err := s.ra.ReadAt(s.buf[s.w:s.w+want], s.base+end)
			s.w += got
			if err != nil && err != io.EOF {
				return err
			}
			if got < want {
				s.size = end + int64(got) // the source is shorter than announced
			}
			s.chunk = min(s.chunk*2, len(s.buf))
		}
	} else {
		for s.w < n && !s.rdEnd {
			got, err := s.rd.Read(s.buf[s.w:])
			s.w += got
			if err == io.EOF {
				s.rdEnd = true
			} else if err != nil {
				return err
			}
		}
	}
	if s.onRead != nil {
		return s.onRead(s.pos + int64(s.avail()))
	}
	return nil
}

// consume drops n buffered bytes.
func (s *tarScanner) consume(n int) {
	s.r += n
	s.pos += int64(n)
}

// skip moves over n bytes. It reports false when the stream ended first.
func (s *tarScanner) skip(n int64) (bool, error) {
	if n <= int64(s.avail()) {
		s.consume(int(n))
		return true, nil
	}
	n -= int64(s.avail())
	s.consume(s.avail())
	s.r, s.w = 0, 0
	if s.ra != nil {
		if s.pos+n > s.size {
			s.pos = s.size
			return false, nil
		}
		s.pos += n
		s.chunk = scanMinChunk
		return true, nil
	}
	for n > 0 {
		if s.rdEnd {
			return false, nil
		}
		got, err := s.rd.Read(s.buf[:min(int64(len(s.buf)), n)])
		s.pos += int64(got)
		n -= int64(got)
		if err == io.EOF {
			s.rdEnd = true
		} else if err != nil {
			return false, err
		}
		if s.onRead != nil {
			if err := s.onRead(s.pos); err != nil {
				return false, err
			}
		}
	}
	return true, nil
}

// readFull appends n bytes of the stream to dst. It reports false when the stream ended first.
func (s *tarScanner) readFull(dst []byte, n int) ([]byte, bool, error) {
	for n > 0 {
		if err := s.fill(min(n, len(s.buf))); err != nil {
			return dst, false, err
		}
		k := min(n, s.avail())
		if k == 0 {
			return dst, false, nil
		}
		dst = append(dst, s.buf[s.r:s.r+k]...)
		s.consume(k)
		n -= k
	}
	return dst, true, nil
}

// tarErrAt wraps err with the stream offset it refers to.
func tarErrAt(off int64, err error, format string, args ...any) error {
	if format == "" {
		return fmt.Errorf("tar header at offset %d: %w", off, err)
	}
	return fmt.Errorf("tar header at offset %d: %s: %w", off, fmt.Sprintf(format, args...), err)
}

func (s *tarScanner) resetPending() {
	s.hasLongN, s.hasLongL = false, false
	s.pax = paxState{}
	s.xattrRefs = s.xattrRefs[:0]
	s.xattrBuf = s.xattrBuf[:0]
	s.sparse0, s.sparse0n = s.sparse0[:0], 0
}

// headerFields are the numeric fields of one header block.
type headerFields struct {
	format            tarFormat
	flag              byte
	size, mode        int64
	uid, gid          int64
	mtime             int64
	devmajor, devmin  int64
	nameEnd, linkEnd  int // lengths of the NUL-terminated name and link fields
	prefixOff, prefix int // ustar/star prefix (offset and length in the block), 0 if none
}

type tarFormat uint8

const (
	formatUnknown tarFormat = iota
	formatV7
	formatUSTAR // also PAX
	formatSTAR
	formatGNU
)

func (s *tarScanner) next() (*tarMember, error) {
	s.resetPending()
	hdrStart := int64(-1)
	for {
		// Skip the data and padding of the previous member (or meta header).
		if s.dataSkip > 0 {
			ok, err := s.skip(s.dataSkip)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, fmt.Errorf("member data at offset %d: %w", s.m.Offset, ErrTarTruncated)
			}
			s.dataSkip = 0
		}
		if s.padSkip > 0 {
			ok, err := s.skip(s.padSkip)
			s.padSkip = 0
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, io.EOF // archive/tar accepts an archive that ends in the last member's padding
			}
		}

		off := s.pos
		if hdrStart < 0 {
			hdrStart = off
		}
		if err := s.fill(tarBlock); err != nil {
			return nil, err
		}
		if s.avail() == 0 {
			if s.hasPending() {
				return nil, fmt.Errorf("stream ends after extended header at offset %d: %w", off, ErrTarTruncated)
			}
			return nil, io.EOF
		}
		if s.avail() < tarBlock {
			return nil, tarErrAt(off, ErrTarTruncated, "")
		}
		blk := s.buf[s.r : s.r+tarBlock]
		u, sg, zero := tarChecksums(blk)
		if zero {
			s.consume(tarBlock)
			if err := s.fill(tarBlock); err != nil {
				return nil, err
			}
			switch {
			case s.avail() == 0:
				return nil, io.EOF
			case s.avail() < tarBlock:
				return nil, tarErrAt(off+tarBlock, ErrTarTruncated, "")
			case isZeroBlock(s.buf[s.r : s.r+tarBlock]):
				s.consume(tarBlock)
				return nil, io.EOF
			}
			return nil, tarErrAt(off+tarBlock, ErrTarHeader, "zero block followed by data")
		}
		f, ok := parseHeader(blk, u, sg)
		if !ok {
			if f.format == formatUnknown && s.headers == 0 {
				return nil, ErrNotTar
			}
			if f.format == formatUnknown {
				return nil, tarErrAt(off, ErrTarHeader, "bad checksum")
			}
			return nil, tarErrAt(off, ErrTarHeader, "bad numeric field")
		}
		s.headers++

		switch f.flag {
		case 'x', 'g':
			if f.size < 0 {
				return nil, tarErrAt(off, ErrTarHeader, "negative size")
			}
			if f.size > maxPAXSize {
				return nil, tarErrAt(off, ErrTarLimit, "PAX header of %d bytes", f.size)
			}
			s.consume(tarBlock)
			var ok bool
			var err error
			// A new 'x' header replaces the pending one (as archive/tar does).
			s.pax = paxState{}
			s.xattrRefs = s.xattrRefs[:0]
			s.xattrBuf = s.xattrBuf[:0]
			s.sparse0, s.sparse0n = s.sparse0[:0], 0
			s.paxBuf, ok, err = s.readFull(s.paxBuf[:0], int(f.size))
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, tarErrAt(off, ErrTarTruncated, "PAX header")
			}
			s.padSkip = tarPad(f.size)
			if err := s.parsePAX(s.paxBuf); err != nil {
				return nil, tarErrAt(off, err, "PAX header")
			}
			if f.flag == 'g' {
				// Global headers are ignored; like archive/tar, they end any pending extended header.
				s.resetPending()
				hdrStart = -1
			}
			continue
		case 'L', 'K':
			if f.size < 0 {
				return nil, tarErrAt(off, ErrTarHeader, "negative size")
			}
			if f.size > maxNameLen+1 {
				return nil, tarErrAt(off, ErrTarLimit, "GNU long name of %d bytes", f.size)
			}
			s.consume(tarBlock)
			dst := &s.longName
			if f.flag == 'K' {
				dst = &s.longLink
			}
			var ok bool
			var err error
			*dst, ok, err = s.readFull((*dst)[:0], int(f.size))
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, tarErrAt(off, ErrTarTruncated, "GNU long name")
			}
			*dst = cString(*dst)
			if f.flag == 'K' {
				s.hasLongL = true
			} else {
				s.hasLongN = true
			}
			s.padSkip = tarPad(f.size)
			continue
		}
		m, err := s.member(blk, &f, off, hdrStart)
		if err != nil {
			return nil, err
		}
		if m == nil {
			// A member of a type we do not report: its data is skipped and pending extended headers end.
			s.resetPending()
			hdrStart = -1
			continue
		}
		return m, nil
	}
}

func (s *tarScanner) hasPending() bool {
	return s.hasLongN || s.hasLongL || s.pax.set
}

// member completes a member from its header block blk (still buffered, not consumed). It returns a nil
// member for types that are skipped.
func (s *tarScanner) member(blk []byte, f *headerFields, off, hdrStart int64) (*tarMember, error) {
	m := &s.m
	*m = tarMember{Header: hdrStart, Flag: f.flag}

	// Names from the block, copied since later reads may move the buffer.
	s.nameBuf = s.nameBuf[:0]
	if f.prefix > 0 {
		s.nameBuf = append(s.nameBuf, blk[f.prefixOff:f.prefixOff+f.prefix]...)
		s.nameBuf = append(s.nameBuf, '/')
	}
	s.nameBuf = append(s.nameBuf, blk[:f.nameEnd]...)
	s.linkBuf = append(s.linkBuf[:0], blk[157:157+f.linkEnd]...)
	name, link := s.nameBuf, s.linkBuf

	size, uid, gid, mtime, nsec := f.size, f.uid, f.gid, f.mtime, int64(0)
	// PAX records override the header (empty values keep the header's).
	p := &s.pax
	if p.set {
		if len(p.path) > 0 {
			name = p.path
		}
		if len(p.linkpath) > 0 {
			link = p.linkpath
		}
		var ok bool
		if len(p.uid) > 0 {
			if uid, ok = tarDecimal(p.uid); !ok {
				return nil, tarErrAt(off, ErrTarHeader, "PAX uid %q", p.uid)
			}
		}
		if len(p.gid) > 0 {
			if gid, ok = tarDecimal(p.gid); !ok {
				return nil, tarErrAt(off, ErrTarHeader, "PAX gid %q", p.gid)
			}
		}
		if len(p.mtime) > 0 {
			if mtime, nsec, ok = tarPAXTime(p.mtime); !ok {
				return nil, tarErrAt(off, ErrTarHeader, "PAX mtime %q", p.mtime)
			}
		}
		for i, t := range [][]byte{p.atime, p.ctime} {
			if len(t) > 0 {
				sec, nsec, ok := tarPAXTime(t)
				if !ok {
					return nil, tarErrAt(off, ErrTarHeader, "PAX time %q", t)
				}
				m.times[i] = paxTime{sec: sec, nsec: uint32(nsec), set: true}
			}
		}
		if len(p.size) > 0 {
			if size, ok = tarDecimal(p.size); !ok {
				return nil, tarErrAt(off, ErrTarHeader, "PAX size %q", p.size)
			}
		}
	}
	if s.hasLongN && len(s.longName) > 0 {
		name = s.longName
	}
	if s.hasLongL && len(s.longLink) > 0 {
		link = s.longLink
	}
	flag := f.flag
	if flag == 0 {
		flag = '0'
		if len(name) > 0 && name[len(name)-1] == '/' {
			flag = '5'
		}
	}
	m.Flag = flag

	nb := size
	if tarHeaderOnly(flag) {
		nb = 0
	}
	if nb < 0 {
		return nil, tarErrAt(off, ErrTarHeader, "negative size")
	}
	s.consume(tarBlock)

	// Sparse files.
	var mapBytes int64
	sparse := false
	if flag == 'S' {
		var err error
		if size, err = s.oldGNUSparse(blk, f, off); err != nil {
			return nil, err
		}
		sparse = true
	} else if p.set {
		var err error
		sparse, name, size, mapBytes, err = s.paxSparse(name, size, nb, off)
		if err != nil {
			return nil, err
		}
	}
	if sparse {
		if tarHeaderOnly(flag) {
			return nil, tarErrAt(off, ErrTarHeader, "sparse map on a %q member", flag)
		}
		if err := s.finishSparse(size, nb-mapBytes, off); err != nil {
			return nil, err
		}
	}
	m.Offset = s.pos
	m.Stored = nb - mapBytes
	s.dataSkip = nb - mapBytes
	s.padSkip = tarPad(nb)

	switch flag {
	case '0', '7', 'S':
		m.Type = TypeRegular
	case '1':
		m.Type = TypeHardlink
	case '2':
		m.Type = TypeSymlink
	case '3':
		m.Type = TypeChar
	case '4':
		m.Type = TypeBlock
	case '5', 'D':
		m.Type = TypeDir
	case '6':
		m.Type = TypeFIFO
	case 'V', 'M', 'N':
		// GNU volume labels, multi-volume continuations and old long-name lists: archive metadata,
		// not files (GNU tar skips them too).
		return nil, nil
	default:
		// POSIX: an unrecognised typeflag is read as a regular file, as GNU tar (with a warning) and
		// bsdtar extract it. The builder warns; Flag keeps the original.
		m.Type = TypeRegular
	}
	if len(name) > maxNameLen {
		return nil, tarErrAt(off, ErrTarLimit, "name of %d bytes", len(name))
	}
	if len(link) > maxNameLen {
		return nil, tarErrAt(off, ErrTarLimit, "link name of %d bytes", len(link))
	}
	m.Name, m.LinkName = name, link
	m.Mode = uint32(f.mode) & 0o7777
	m.UID, m.GID = uint32(uid), uint32(gid)
	m.MtimeSec, m.MtimeNsec = mtime, uint32(nsec)
	if m.Type == TypeRegular {
		m.Size = size
		if sparse {
			m.Sparse = s.sparse
		}
	}
	if m.Type == TypeChar || m.Type == TypeBlock {
		m.Devmajor, m.Devminor = uint32(f.devmajor), uint32(f.devmin)
	}
	if s.pax.aclAccess != nil || s.pax.aclDefault != nil {
		s.addTextACLs()
	}
	if len(s.xattrRefs) > 0 {
		m.Xattrs = s.xattrList()
		if m.Type != TypeSymlink {
			m.Mode = aclMode(m.Xattrs, m.Mode)
		}
	}
	return m, nil
}

// tarHeaderOnly reports whether members of this type have no data, whatever their size field says.
func tarHeaderOnly(flag byte) bool {
	switch flag {
	case '1', '2', '3', '4', '5', '6':
		return true
	}
	return false
}

func tarPad(n int64) int64 { return -n & (tarBlock - 1) }

// oldGNUSparse reads the old GNU sparse map of an 'S' member from its header block and extension
// headers (which follow the header and are not part of the data). It returns the real size.
func (s *tarScanner) oldGNUSparse(blk []byte, f *headerFields, off int64) (int64, error) {
	if f.format != formatGNU {
		return 0, tarErrAt(off, ErrTarHeader, "sparse member not in GNU format")
	}
	real, ok := tarNumeric(blk[483:495])
	if !ok {
		return 0, tarErrAt(off, ErrTarHeader, "sparse real size")
	}
	s.sparse = s.sparse[:0]
	// The header block has been consumed but is still in the buffer; parse it before any read.
	entries, ext := blk[386:386+4*24], blk[482]
	total := 4*24 + 1
	for {
		for i := 0; i+24 <= len(entries); i += 24 {
			e := entries[i : i+24]
			if e[0] == 0 {
				break
			}
			o, ok1 := tarNumeric(e[:12])
			l, ok2 := tarNumeric(e[12:24])
			if !ok1 || !ok2 {
				return 0, tarErrAt(off, ErrTarHeader, "sparse map entry")
			}
			if len(s.sparse) >= maxSparseRegions {
				return 0, tarErrAt(off, ErrTarLimit, "more than %d sparse regions", maxSparseRegions)
			}
			s.sparse = append(s.sparse, SparseRegion{Offset: o, Length: l})
		}
		if ext == 0 {
			return real, nil
		}
		if total >= maxSparseMapSize {
			return 0, tarErrAt(off, ErrTarLimit, "sparse map over %d bytes", maxSparseMapSize)
		}
		if err := s.fill(tarBlock); err != nil {
			return 0, err
		}
		if s.avail() < tarBlock {
			return 0, tarErrAt(off, ErrTarTruncated, "sparse extension header")
		}
		b := s.buf[s.r : s.r+tarBlock]
		s.consume(tarBlock)
		entries, ext = b[:21*24], b[504]
		total += 21*24 + 1
	}
}

// paxSparse handles the GNU sparse PAX formats 0.0, 0.1 and 1.0 for a member with physical size nb. It
// returns whether the member is sparse, its name and logical size, and the bytes of data taken by a 1.0
// map.
func (s *tarScanner) paxSparse(name []byte, size, nb, off int64) (bool, []byte, int64, int64, error) {
	p := &s.pax
	var is1x0 bool
	major, minor := string(p.spMajor), string(p.spMinor)
	switch {
	case major == "0" && (minor == "0" || minor == "1"):
	case major == "1" && minor == "0":
		is1x0 = true
	case major != "" || minor != "":
		return false, name, size, 0, nil // unknown version: not sparse to us
	case len(p.spMap) > 0:
	default:
		return false, name, size, 0, nil
	}
	if len(p.spName) > 0 {
		name = p.spName
	}
	sz := p.spSize
	if len(sz) == 0 {
		sz = p.spReal
	}
	if len(sz) > 0 {
		n, ok := tarDecimal(sz)
		if !ok {
			return false, nil, 0, 0, tarErrAt(off, ErrTarHeader, "GNU.sparse size %q", sz)
		}
		size = n
	}
	s.sparse = s.sparse[:0]
	if !is1x0 {
		return true, name, size, 0, s.sparseMap0x1(off)
	}
	mapBytes, err := s.sparseMap1x0(nb, off)
	return true, name, size, mapBytes, err
}

// sparseMap0x1 parses GNU.sparse.numblocks and GNU.sparse.map.
func (s *tarScanner) sparseMap0x1(off int64) error {
	p := &s.pax
	n, ok := tarDecimal(p.spNumBlocks)
	if !ok || n < 0 {
		return tarErrAt(off, ErrTarHeader, "GNU.sparse.numblocks %q", p.spNumBlocks)
	}
	if n > maxSparseRegions {
		return tarErrAt(off, ErrTarLimit, "more than %d sparse regions", maxSparseRegions)
	}
	mp := p.spMap
	fields := 0
	if len(mp) > 0 {
		fields = bytes.Count(mp, []byte{','}) + 1
	}
	if int64(fields) != 2*n {
		return tarErrAt(off, ErrTarHeader, "GNU.sparse.map has %d numbers for %d regions", fields, n)
	}
	for i := int64(0); i < n; i++ {
		a, rest, _ := bytes.Cut(mp, []byte{','})
		b, rest2, _ := bytes.Cut(rest, []byte{','})
		mp = rest2
		o, ok1 := tarDecimal(a)
		l, ok2 := tarDecimal(b)
		if !ok1 || !ok2 {
			return tarErrAt(off, ErrTarHeader, "GNU.sparse.map entry")
		}
		s.sparse = append(s.sparse, SparseRegion{Offset: o, Length: l})
	}
	return nil
}

// sparseMap1x0 reads the GNU 1.0 sparse map at the start of the member's data (nb bytes): newline
// terminated decimal numbers, the region count then offset/length pairs, padded to whole blocks.
func (s *tarScanner) sparseMap1x0(nb, off int64) (int64, error) {
	var (
		used    int64 // bytes of whole blocks taken
		numbers int64 // numbers parsed
		want    int64 = 1
		pending int64 // offset waiting for its length
	)
	s.tok = s.tok[:0]
	for numbers < want {
		if used+tarBlock > nb {
			return 0, tarErrAt(off, ErrTarHeader, "sparse map longer than the member data")
		}
		if used+tarBlock > maxSparseMapSize {
			return 0, tarErrAt(off, ErrTarLimit, "sparse map over %d bytes", maxSparseMapSize)
		}
		if err := s.fill(tarBlock); err != nil {
			return 0, err
		}
		if s.avail() < tarBlock {
			return 0, tarErrAt(off, ErrTarTruncated, "sparse map")
		}
		b := s.buf[s.r : s.r+tarBlock]
		for len(b) > 0 && numbers < want {
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				s.tok = append(s.tok, b...)
				break
			}
			s.tok = append(s.tok, b[:i]...)
			b = b[i+1:]
			v, ok := tarDecimal(s.tok)
			s.tok = s.tok[:0]
			if !ok {
				return 0, tarErrAt(off, ErrTarHeader, "sparse map number")
			}
			switch {
			case numbers == 0:
				if v < 0 {
					return 0, tarErrAt(off, ErrTarHeader, "sparse map count %d", v)
				}
				if v > maxSparseRegions {
					return 0, tarErrAt(off, ErrTarLimit, "more than %d sparse regions", maxSparseRegions)
				}
				want = 1 + 2*v
			case numbers%2 == 1:
				pending = v
			default:
				s.sparse = append(s.sparse, SparseRegion{Offset: pending, Length: v})
			}
			numbers++
		}
		if len(s.tok) > 64 {
			return 0, tarErrAt(off, ErrTarHeader, "sparse map number too long")
		}
		s.consume(tarBlock)
		used += tarBlock
	}
	return used, nil
}

// finishSparse validates the map against the logical size and the stored data, drops empty regions and
// assigns physical offsets.
func (s *tarScanner) finishSparse(size, stored, off int64) error {
	if size < 0 {
		return tarErrAt(off, ErrTarHeader, "negative sparse size")
	}
	var prevEnd, phys int64
	out := s.sparse[:0]
	for _, r := range s.sparse {
		switch {
		case r.Offset < 0 || r.Length < 0:
			return tarErrAt(off, ErrTarHeader, "negative sparse region")
		case r.Offset > (1<<63-1)-r.Length:
			return tarErrAt(off, ErrTarHeader, "sparse region overflows")
		case r.Offset+r.Length > size:
			return tarErrAt(off, ErrTarHeader, "sparse region beyond the file size")
		case r.Offset < prevEnd:
			return tarErrAt(off, ErrTarHeader, "sparse regions overlap or are out of order")
		}
		prevEnd = r.Offset + r.Length
		if r.Length == 0 {
			continue
		}
		r.Physical = phys
		phys += r.Length
		out = append(out, r)
	}
	if phys > stored {
		return tarErrAt(off, errSparseData, "sparse map needs %d bytes, member stores %d", phys, stored)
	}
	s.sparse = out
	if s.sparse == nil {
		s.sparse = []SparseRegion{}
	}
	return nil
}

// errSparseData is ErrTarHeader for a sparse map that references more data than the member stores.
var errSparseData = fmt.Errorf("%w (sparse data missing)", ErrTarHeader)

// parsePAX parses the records of a PAX header into s.pax.
func (s *tarScanner) parsePAX(b []byte) error {
	p := &s.pax
	p.set = true
	for len(b) > 0 {
		sp := bytes.IndexByte(b, ' ')
		if sp < 0 {
			return ErrTarHeader
		}
		n, ok := tarDecimal(b[:sp])
		if !ok || n < 5 || n > int64(len(b)) {
			return ErrTarHeader
		}
		n -= int64(sp + 1)
		if n <= 0 {
			return ErrTarHeader
		}
		rest := b[sp+1:]
		rec := rest[:n-1]
		if rest[n-1] != '\n' {
			return ErrTarHeader
		}
		b = rest[n:]
		eq := bytes.IndexByte(rec, '=')
		if eq <= 0 {
			return ErrTarHeader
		}
		k, v := rec[:eq], rec[eq+1:]
		switch string(k) {
		case "path", "linkpath", "uname", "gname":
			if bytes.IndexByte(v, 0) >= 0 {
				return ErrTarHeader
			}
		default:
			if bytes.IndexByte(k, 0) >= 0 {
				return ErrTarHeader
			}
		}
		switch string(k) {
		case "path":
			p.path = v
		case "linkpath":
			p.linkpath = v
		case "size":
			p.size = v
		case "uid":
			p.uid = v
		case "gid":
			p.gid = v
		case "mtime":
			p.mtime = v
		case "atime":
			p.atime = v
		case "ctime":
			p.ctime = v
		case "GNU.sparse.major":
			p.spMajor = v
		case "GNU.sparse.minor":
			p.spMinor = v
		case "GNU.sparse.name":
			p.spName = v
		case "GNU.sparse.size":
			p.spSize = v
		case "GNU.sparse.realsize":
			p.spReal = v
		case "GNU.sparse.numblocks":
			p.spNumBlocks = v
		case "GNU.sparse.map":
			if !p.hasSpMap {
				p.spMap = v
			}
		case "GNU.sparse.offset", "GNU.sparse.numbytes":
			// Format 0.0: repeated offset/numbytes pairs, turned into a 0.1 map.
			even := s.sparse0n%2 == 0
			if (even && string(k) != "GNU.sparse.offset") || (!even && string(k) != "GNU.sparse.numbytes") ||
				bytes.IndexByte(v, ',') >= 0 {
				return ErrTarHeader
			}
			if len(s.sparse0) > 0 {
				s.sparse0 = append(s.sparse0, ',')
			}
			s.sparse0 = append(s.sparse0, v...)
			s.sparse0n++
			if len(s.sparse0) > maxPAXSize {
				return ErrTarLimit
			}
			p.spMap, p.hasSpMap = s.sparse0, true
		case "SCHILY.acl.access":
			p.aclAccess = v
		case "SCHILY.acl.default":
			p.aclDefault = v
		default:
			if name, ok := bytes.CutPrefix(k, []byte("SCHILY.xattr.")); ok {
				if len(v) == 0 {
					s.dropXattr(name) // POSIX pax: an empty record deletes the keyword, as Go's reader and umoci take it
				} else {
					s.addXattr(name, v)
				}
			} else if name, ok := bytes.CutPrefix(k, []byte("LIBARCHIVE.xattr.")); ok {
				s.addLibarchiveXattr(name, v)
			}
		}
	}
	return nil
}

func (s *tarScanner) addXattr(name, value []byte) {
	if len(name) == 0 {
		return
	}
	s.xattrRefs = append(s.xattrRefs, xattrRef{off: len(s.xattrBuf), nameLen: len(name), valueLen: len(value)})
	s.xattrBuf = append(s.xattrBuf, name...)
	s.xattrBuf = append(s.xattrBuf, value...)
}

// dropXattr records the deletion of xattr name by a later record.
func (s *tarScanner) dropXattr(name []byte) {
	if len(name) == 0 {
		return
	}
	s.xattrRefs = append(s.xattrRefs, xattrRef{off: len(s.xattrBuf), nameLen: len(name), valueLen: -1})
	s.xattrBuf = append(s.xattrBuf, name...)
}

// xattrList returns the pending xattrs sorted by name, the last record of each name kept (none when
// that record deletes it).
func (s *tarScanner) xattrList() []tarXattr {
	s.xattrs = s.xattrs[:0]
	dropped := false
	for _, r := range s.xattrRefs {
		n := s.xattrBuf[r.off : r.off+r.nameLen : r.off+r.nameLen]
		var v []byte // nil: deleted
		if r.valueLen >= 0 {
			v = s.xattrBuf[r.off+r.nameLen : r.off+r.nameLen+r.valueLen : r.off+r.nameLen+r.valueLen]
		} else {
			dropped = true
		}
		s.xattrs = append(s.xattrs, tarXattr{Name: n, Value: v})
	}
	out := sortXattrs(s.xattrs)
	if dropped {
		out = slices.DeleteFunc(out, func(x tarXattr) bool { return x.Value == nil })
	}
	return out
}

// addLibarchiveXattr adds a LIBARCHIVE.xattr record: the name is URL-encoded, the value base64.
func (s *tarScanner) addLibarchiveXattr(name, value []byte) {
	dec, ok := percentDecode(name)
	if !ok {
		return
	}
	val := make([]byte, base64.RawStdEncoding.DecodedLen(len(value)))
	n, err := base64.StdEncoding.Decode(val, value)
	if err != nil {
		n, err = base64.RawStdEncoding.Decode(val, bytes.TrimRight(value, "="))
		if err != nil {
			return
		}
	}
	s.addXattr(dec, val[:n])
}

func percentDecode(b []byte) ([]byte, bool) {
	if bytes.IndexByte(b, '%') < 0 {
		return b, true
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '%' {
			out = append(out, b[i])
			continue
		}
		if i+2 >= len(b) {
			return nil, false
		}
		h, ok1 := hexNibble(b[i+1])
		l, ok2 := hexNibble(b[i+2])
		if !ok1 || !ok2 {
			return nil, false
		}
		out = append(out, h<<4|l)
		i += 2
	}
	return out, true
}

func hexNibble(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// sortXattrs sorts by name and keeps the last record of each name.
func sortXattrs(x []tarXattr) []tarXattr {
	slices.SortStableFunc(x, func(a, b tarXattr) int { return bytes.Compare(a.Name, b.Name) })
	out := x[:0]
	for i := range x {
		if i+1 < len(x) && bytes.Equal(x[i].Name, x[i+1].Name) {
			continue
		}
		out = append(out, x[i])
	}
	return out
}

// parseHeader checks a header block and parses its fields. u and sg are the block's unsigned and signed
// tarChecksums. It reports false for a bad checksum (f.format == formatUnknown) or a bad number.
func parseHeader(b []byte, u, sg int64) (headerFields, bool) {
	var f headerFields
	sum, ok := tarOctal(b[148:156])
	if !ok || (sum != u && sum != sg) {
		return f, false
	}
	switch {
	case string(b[257:263]) == "ustar\x00" && string(b[508:512]) == "tar\x00":
		f.format = formatSTAR
	case string(b[257:263]) == "ustar\x00":
		f.format = formatUSTAR
	case string(b[257:263]) == "ustar " && string(b[263:265]) == " \x00":
		f.format = formatGNU
	default:
		f.format = formatV7
	}
	f.flag = b[156]
	f.nameEnd = cStrLen(b[0:100])
	f.linkEnd = cStrLen(b[157:257])
	all := true
	var ok1 bool
	f.size, ok1 = tarNumeric(b[124:136])
	all = all && ok1
	f.mode, ok1 = tarNumeric(b[100:108])
	all = all && ok1
	f.uid, ok1 = tarNumeric(b[108:116])
	all = all && ok1
	f.gid, ok1 = tarNumeric(b[116:124])
	all = all && ok1
	f.mtime, ok1 = tarNumeric(b[136:148])
	all = all && ok1
	if f.format > formatV7 {
		f.devmajor, ok1 = tarNumeric(b[329:337])
		all = all && ok1
		f.devmin, ok1 = tarNumeric(b[337:345])
		all = all && ok1
		switch f.format {
		case formatUSTAR:
			f.prefixOff, f.prefix = 345, cStrLen(b[345:500])
		case formatSTAR:
			f.prefixOff, f.prefix = 345, cStrLen(b[345:476])
			_, ok1 = tarNumeric(b[476:488])
			all = all && ok1
			_, ok1 = tarNumeric(b[488:500])
			all = all && ok1
		case formatGNU:
			// Go before 1.8 wrote a ustar prefix into GNU headers; archive/tar reads it back when the
			// atime/ctime fields do not parse and the prefix is ASCII. Do the same.
			okA := true
			if b[345] != 0 {
				_, okA = tarNumeric(b[345:357])
			}
			okC := true
			if b[357] != 0 {
				_, okC = tarNumeric(b[357:369])
			}
			if !okA || !okC {
				n := cStrLen(b[345:500])
				if isASCIIBytes(b[345 : 345+n]) {
					f.prefixOff, f.prefix = 345, n
				}
			}
		}
	}
	return f, all
}

func isASCIIBytes(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

func cStrLen(b []byte) int {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return i
	}
	return len(b)
}

func cString(b []byte) []byte { return b[:cStrLen(b)] }

// tarChecksums returns the unsigned and signed sums of a header block with the checksum field counted as
// spaces, and whether the block is all zeros.
func tarChecksums(b []byte) (unsigned, signed int64, zero bool) {
	const lanes = 0x00ff00ff00ff00ff
	const highs = 0x0101010101010101
	var lo, hi, neg, or uint64
	b = b[:tarBlock]
	for i := 0; i < tarBlock; i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		or |= w
		lo += w & lanes
		hi += (w >> 8) & lanes
		neg += (w >> 7) & highs
	}
	if or == 0 {
		return 0, 0, true
	}
	s := lo + hi
	sum := int64(s&0xffff + s>>16&0xffff + s>>32&0xffff + s>>48)
	n := (neg & lanes) + (neg >> 8 & lanes)
	cnt := int64(n&0xffff + n>>16&0xffff + n>>32&0xffff + n>>48)
	for _, c := range b[148:156] {
		sum -= int64(c)
		if c >= 0x80 {
			cnt--
		}
	}
	sum += 8 * ' '
	return sum, sum - 256*cnt, false
}

func isZeroBlock(b []byte) bool {
	var or uint64
	for i := 0; i+8 <= len(b); i += 8 {
		or |= binary.LittleEndian.Uint64(b[i:])
	}
	return or == 0
}

// tarNumeric parses a numeric header field: base-256 when the high bit of the first byte is set,
// else octal.
func tarNumeric(b []byte) (int64, bool) {
	if len(b) > 0 && b[0]&0x80 != 0 {
		var inv byte
		if b[0]&0x40 != 0 {
			inv = 0xff
		}
		var x uint64
		for i, c := range b {
			c ^= inv
			if i == 0 {
				c &= 0x7f
			}
			if x>>56 > 0 {
				return 0, false
			}
			x = x<<8 | uint64(c)
		}
		if x>>63 > 0 {
			return 0, false
		}
		if inv == 0xff {
			return ^int64(x), true
		}
		return int64(x), true
	}
	return tarOctal(b)
}

// tarOctal parses an octal field padded with spaces and NULs on either side.
func tarOctal(b []byte) (int64, bool) {
	i, j := 0, len(b)
	for i < j && (b[i] == ' ' || b[i] == 0) {
		i++
	}
	for j > i && (b[j-1] == ' ' || b[j-1] == 0) {
		j--
	}
	if i == j {
		return 0, true
	}
	b = cString(b[i:j])
	if len(b) == 0 {
		return 0, false
	}
	var x uint64
	for _, c := range b {
		if c < '0' || c > '7' || x > (1<<64-1)>>3 {
			return 0, false
		}
		x = x<<3 | uint64(c-'0')
	}
	return int64(x), true
}

// tarDecimal parses a signed decimal int64 the way strconv.ParseInt(s, 10, 64) does.
func tarDecimal(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		neg = b[0] == '-'
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	var x uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if x > (1<<64-1)/10 {
			return 0, false
		}
		x = x*10 + uint64(c-'0')
	}
	if neg {
		if x > 1<<63 {
			return 0, false
		}
		return -int64(x), true
	}
	if x > 1<<63-1 {
		return 0, false
	}
	return int64(x), true
}

// tarPAXTime parses "sec[.frac]" into seconds and nanoseconds (0 <= nsec < 1e9), like archive/tar.
func tarPAXTime(b []byte) (int64, int64, bool) {
	ss, sn, _ := bytes.Cut(b, []byte{'.'})
	sec, ok := tarDecimal(ss)
	if !ok {
		return 0, 0, false
	}
	var nsec int64
	for i, c := range sn {
		if c < '0' || c > '9' {
			return 0, 0, false
		}
		if i < 9 {
			nsec = nsec*10 + int64(c-'0')
		}
	}
	for i := len(sn); i < 9; i++ {
		nsec *= 10
	}
	if len(ss) > 0 && ss[0] == '-' && nsec > 0 {
		if sec == -1<<63 {
			return 0, 0, false
		}
		sec--
		nsec = 1e9 - nsec
	}
	return sec, nsec, true
}

package index

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"iter"
	"log/slog"
	"os"
	"strings"
	"unsafe"

	"github.com/opencontainers/go-digest"
)

// ErrCorruptTable means a table file is damaged, truncated, of another format version, or not a table.
var ErrCorruptTable = errors.New("index: corrupt table file")

// Table file format, version 2 (version 1 had no blob digest and no warnings). All integers little endian.
//
//	header (256 bytes):
//	  0  magic "IMGFSTBL"
//	  8  u32 format version       12 u32 header size (256)
//	 16  u32 record size (64)     20 u32 entry count
//	 24  i64 stream size          32 i64 blob size
//	 40  u8 key kind (0 none, 1 sha256), 7 bytes zero
//	 48  [32] key digest
//	 80  5 x (u64 offset, u64 length): records, strings, xattrs, sparse maps, hardlink IDs
//	160  u32 crc32c of everything after the header
//	164  u8 blob digest kind (0 none, 1 sha256), 3 bytes zero   168 [32] blob digest
//	200  u64 offset, u64 length: warnings      216  u64 warnings while building (stored or not)
//	252  u32 crc32c of header bytes 0..252
//	records (64 bytes each, in ID order):
//	  0 u32 parent   4 u8 type   5 u8 zero   6 u16 flags   8 u32 mode   12 u32 uid   16 u32 gid
//	 20 u32 mtime nsec   24 i64 mtime sec   32 i64 size
//	 40 u64 regular: data offset; dir: first child | count<<32; char/block: major | minor<<32;
//	        hardlink: target ID (NoID when outside the layer)
//	 48 u32 string offset (name, then link target)   52 u16 name length   54 u16 link length
//	 56 u32 xattr offset (FlagXattrs)   60 u32 sparse map offset (FlagSparse)
//	strings: bytes. xattrs: u32 count, then u32 name length, u32 value length, name, value.
//	sparse maps: u32 count, u32 zero, then i64 offset, i64 length, i64 physical.
//	hardlinks: u32 IDs of every hardlink entry, ascending.
//	warnings: u32 count, then per warning u32 string count, then per string u32 length and bytes: the
//	  message, then key, value pairs (version 2).
const (
	tableMagic      = "IMGFSTBL"
	tableVersion    = 3 // 2: blob digest and warnings in the header; SCHILY.acl.* text ACLs kept as system.posix_acl_* xattrs; empty SCHILY.xattr records delete the xattr. 3: a member whose access ACL the kernel refuses keeps its tar mode (internal/posixacl)
	tableHeaderSize = 256
	recordSize      = 64
	numSections     = 5
)

const (
	secRecords = iota
	secStrings
	secXattrs
	secSparse
	secHardlinks
)

var tableCRC = crc32.MakeTable(crc32.Castagnoli)

// TableInfo says what a table was built from. It is stored in the table's header; a cached table whose
// info does not match the layer is rebuilt.
type TableInfo struct {
	Key        digest.Digest // the layer's DiffID or, failing that, its blob digest; "" if none
	Blob       digest.Digest // the digest of the blob the table was built (and verified) from; "" if none
	StreamSize int64         // bytes of the uncompressed layer stream
	BlobSize   int64         // bytes of the stored blob
}

// Warning is a member the builder dropped or altered (an escape through "..", a hardlink to a directory,
// an unknown typeflag...), as stored with the table.
type Warning struct {
	Msg   string   // "index: dropping member outside the root"
	Attrs []string // key, value pairs: "name", "../x"
}

// String renders the warning as one line: the message, then key=value pairs with quoted values.
func (w Warning) String() string {
	var sb strings.Builder
	sb.WriteString(w.Msg)
	for i := 0; i+1 < len(w.Attrs); i += 2 {
		fmt.Fprintf(&sb, " %s=%q", w.Attrs[i], w.Attrs[i+1])
	}
	return sb.String()
}

// args returns the attributes as slog arguments.
func (w Warning) args() []any {
	out := make([]any, 0, len(w.Attrs))
	for _, a := range w.Attrs {
		out = append(out, a)
	}
	return out
}

// Table is a read-only table of a layer's members, read in place from a memory-mapped file. Accessors
// never panic, even on a malformed file: out-of-range IDs and damaged records give zero values.
type Table struct {
	data    []byte
	records []byte
	strs    []byte
	xattrs  []byte
	sparse  []byte
	links   []byte
	n       int
	info    TableInfo
	warns   []Warning
	nwarn   int64 // warnings while building, stored or not
	unmap   func() error
}

// crcWriter writes through to w and keeps the crc32c of what went through.
type crcWriter struct {
	w   io.Writer
	crc uint32
	n   int64
}

func (c *crcWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.crc = crc32.Update(c.crc, tableCRC, p[:n])
	c.n += int64(n)
	return n, err
}

// write writes the table of a finished build to f, which must be empty.
func (b *builder) write(f *os.File, l *layout, info TableInfo) error {
	if _, err := f.Write(make([]byte, tableHeaderSize)); err != nil {
		return err
	}
	cw := &crcWriter{w: f, n: tableHeaderSize}
	w := bufio.NewWriterSize(cw, 1<<20)
	pos := int64(tableHeaderSize)
	var secs [numSections][2]uint64
	pad := func() {
		for pos%8 != 0 {
			w.WriteByte(0)
			pos++
		}
	}
	section := func(i int, start int64) { secs[i] = [2]uint64{uint64(start), uint64(pos - start)} }

	// Records.
	var rec [recordSize]byte
	var strOff uint64
	nextChild := uint64(1)
	err := b.coldWindows(l, func(lo int, cw []byte) error {
		for j := 0; j*coldPay < len(cw); j++ {
			id := lo + j
			ni := l.order[id]
			nd := b.node(ni)
			data := nd // the node whose metadata the record carries (its cold metadata is cd)
			cd := decodeCold(cw[j*coldPay:])
			typ := nd.typ
			x := cd.x
			linkLen := nd.linkLen
			if typ == TypeHardlink {
				switch t := nd.link; {
				case t == noNode:
					x = uint64(NoID)
				case l.newID[t] != noNode:
					x = uint64(l.newID[t])
				case l.carrier[t] == ni:
					// This hardlink carries the data of a target replaced later in the layer (cd is the
					// target's).
					data = b.node(t)
					typ, linkLen = data.typ, data.linkLen
				default:
					x = uint64(l.newID[l.carrier[t]])
				}
			}
			if typ == TypeDir {
				n := uint64(l.start[ni+1] - l.start[ni])
				x = nextChild | n<<32
				nextChild += n
			}
			parent := uint32(0)
			if id != 0 {
				parent = l.newID[nd.parent]
			}
			clear(rec[:])
			binary.LittleEndian.PutUint32(rec[0:], parent)
			rec[4] = byte(typ)
			binary.LittleEndian.PutUint16(rec[6:], uint16(data.flags&^flagLinkTarget))
			binary.LittleEndian.PutUint32(rec[8:], cd.mode)
			binary.LittleEndian.PutUint32(rec[12:], cd.uid)
			binary.LittleEndian.PutUint32(rec[16:], cd.gid)
			binary.LittleEndian.PutUint32(rec[20:], cd.nsec)
			binary.LittleEndian.PutUint64(rec[24:], uint64(cd.sec))
			if typ == TypeRegular {
				binary.LittleEndian.PutUint64(rec[32:], uint64(cd.size))
			}
			binary.LittleEndian.PutUint64(rec[40:], x)
			if strOff > maxArena {
				return fmt.Errorf("strings: %w", ErrTableTooLarge)
			}
			binary.LittleEndian.PutUint32(rec[48:], uint32(strOff))
			binary.LittleEndian.PutUint16(rec[52:], nd.nameLen)
			binary.LittleEndian.PutUint16(rec[54:], linkLen)
			binary.LittleEndian.PutUint32(rec[56:], cd.xattrOff)
			binary.LittleEndian.PutUint32(rec[60:], cd.sparseOff)
			strOff += uint64(nd.nameLen) + uint64(linkLen)
			w.Write(rec[:])
		}
		return nil
	})
	if err != nil {
		return err
	}
	pos += int64(len(l.order)) * recordSize
	secs[secRecords] = [2]uint64{tableHeaderSize, uint64(len(l.order)) * recordSize}
	if strOff > maxArena {
		return fmt.Errorf("strings: %w", ErrTableTooLarge)
	}

	// Strings, in the same order.
	start := pos
	for _, ni := range l.order {
		nd := b.node(ni)
		link := b.linkOf(nd)
		if l.isCarrier(b, ni) {
			link = b.linkOf(b.node(nd.link)) // a symlink's target, when the carried entry is one
		}
		w.Write(b.name(nd))
		w.Write(link)
		pos += int64(nd.nameLen) + int64(len(link))
	}
	section(secStrings, start)
	pad()
	start = pos
	w.Write(b.xattr)
	pos += int64(len(b.xattr))
	section(secXattrs, start)
	pad()
	start = pos
	w.Write(b.spars)
	pos += int64(len(b.spars))
	section(secSparse, start)
	pad()
	start = pos
	var idb [4]byte
	for id, ni := range l.order {
		nd := b.node(ni)
		if nd.typ != TypeHardlink {
			continue
		}
		if l.isCarrier(b, ni) {
			continue
		}
		binary.LittleEndian.PutUint32(idb[:], uint32(id))
		w.Write(idb[:])
		pos += 4
	}
	section(secHardlinks, start)
	pad()
	start = pos
	wb := binary.LittleEndian.AppendUint32(nil, uint32(len(b.warns)))
	for _, x := range b.warns {
		wb = binary.LittleEndian.AppendUint32(wb, uint32(1+len(x.Attrs)))
		for _, str := range append([]string{x.Msg}, x.Attrs...) {
			wb = binary.LittleEndian.AppendUint32(wb, uint32(len(str)))
			wb = append(wb, str...)
		}
	}
	w.Write(wb)
	pos += int64(len(wb))
	warnSec := [2]uint64{uint64(start), uint64(pos - start)}
	if err := w.Flush(); err != nil {
		return err
	}
	if cw.n != pos {
		return fmt.Errorf("table writer: wrote %d bytes, expected %d", cw.n, pos)
	}

	hdr := encodeHeader(len(l.order), info, secs, cw.crc)
	binary.LittleEndian.PutUint64(hdr[200:], warnSec[0])
	binary.LittleEndian.PutUint64(hdr[208:], warnSec[1])
	binary.LittleEndian.PutUint64(hdr[216:], uint64(b.warnings))
	binary.LittleEndian.PutUint32(hdr[252:], crc32.Checksum(hdr[:252], tableCRC))
	_, err = f.WriteAt(hdr, 0)
	return err
}

// isCarrier reports whether hardlink node ni carries the data of a target replaced later in the layer.
func (l *layout) isCarrier(b *builder, ni uint32) bool {
	nd := b.node(ni)
	if nd.typ != TypeHardlink || nd.link == noNode || l.newID[nd.link] != noNode {
		return false
	}
	c, ok := l.carrier[nd.link]
	return ok && c == ni
}

func encodeHeader(n int, info TableInfo, secs [numSections][2]uint64, bodyCRC uint32) []byte {
	h := make([]byte, tableHeaderSize)
	copy(h, tableMagic)
	binary.LittleEndian.PutUint32(h[8:], tableVersion)
	binary.LittleEndian.PutUint32(h[12:], tableHeaderSize)
	binary.LittleEndian.PutUint32(h[16:], recordSize)
	binary.LittleEndian.PutUint32(h[20:], uint32(n))
	binary.LittleEndian.PutUint64(h[24:], uint64(info.StreamSize))
	binary.LittleEndian.PutUint64(h[32:], uint64(info.BlobSize))
	if key, ok := digestBytes(info.Key); ok {
		h[40] = 1
		copy(h[48:80], key[:])
	}
	for i, s := range secs {
		binary.LittleEndian.PutUint64(h[80+16*i:], s[0])
		binary.LittleEndian.PutUint64(h[88+16*i:], s[1])
	}
	binary.LittleEndian.PutUint32(h[160:], bodyCRC)
	if d, ok := digestBytes(info.Blob); ok {
		h[164] = 1
		copy(h[168:200], d[:])
	}
	binary.LittleEndian.PutUint32(h[252:], crc32.Checksum(h[:252], tableCRC))
	return h
}

// digestBytes returns the 32 bytes of a valid sha256 digest string.
func digestBytes(d digest.Digest) ([32]byte, bool) {
	var out [32]byte
	h, err := checkSHA256(d)
	if err != nil {
		return out, false
	}
	if _, err := hex.Decode(out[:], []byte(h)); err != nil {
		return out, false
	}
	return out, true
}

// parseTable checks a whole table file (header, layout, checksums, root record) and returns a Table
// reading from data.
func parseTable(data []byte) (*Table, error) {
	return parseTableCRC(data, func() (uint32, error) {
		return crc32.Checksum(data[min(len(data), tableHeaderSize):], tableCRC), nil
	})
}

// parseTableCRC is parseTable with the checksum of the body given by bodyCRC (read from the file, so
// that a mapped table is not brought into memory whole to be checked).
func parseTableCRC(data []byte, bodyCRC func() (uint32, error)) (*Table, error) {
	if len(data) < tableHeaderSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrCorruptTable, len(data))
	}
	h := data[:tableHeaderSize]
	if string(h[:8]) != tableMagic {
		return nil, fmt.Errorf("%w: bad magic", ErrCorruptTable)
	}
	if crc32.Checksum(h[:252], tableCRC) != binary.LittleEndian.Uint32(h[252:]) {
		return nil, fmt.Errorf("%w: header checksum", ErrCorruptTable)
	}
	if v := binary.LittleEndian.Uint32(h[8:]); v != tableVersion {
		return nil, fmt.Errorf("%w: format version %d, want %d", ErrCorruptTable, v, tableVersion)
	}
	if binary.LittleEndian.Uint32(h[12:]) != tableHeaderSize || binary.LittleEndian.Uint32(h[16:]) != recordSize {
		return nil, fmt.Errorf("%w: header or record size", ErrCorruptTable)
	}
	t := &Table{data: data, n: int(binary.LittleEndian.Uint32(h[20:]))}
	t.info.StreamSize = int64(binary.LittleEndian.Uint64(h[24:]))
	t.info.BlobSize = int64(binary.LittleEndian.Uint64(h[32:]))
	if h[40] == 1 {
		t.info.Key = digest.Digest("sha256:" + hex.EncodeToString(h[48:80]))
	}
	if h[164] == 1 {
		t.info.Blob = digest.Digest("sha256:" + hex.EncodeToString(h[168:200]))
	}
	var secs [numSections][]byte
	size := uint64(len(data))
	for i := range secs {
		off := binary.LittleEndian.Uint64(h[80+16*i:])
		n := binary.LittleEndian.Uint64(h[88+16*i:])
		if off < tableHeaderSize || off > size || n > size-off {
			return nil, fmt.Errorf("%w: section %d out of bounds", ErrCorruptTable, i)
		}
		secs[i] = data[off : off+n : off+n]
	}
	t.records, t.strs, t.xattrs, t.sparse, t.links = secs[0], secs[1], secs[2], secs[3], secs[4]
	if t.n < 1 || uint64(len(t.records)) != uint64(t.n)*recordSize || len(t.links)%4 != 0 {
		return nil, fmt.Errorf("%w: entry count %d", ErrCorruptTable, t.n)
	}
	if crc, err := bodyCRC(); err != nil {
		return nil, err
	} else if crc != binary.LittleEndian.Uint32(h[160:]) {
		return nil, fmt.Errorf("%w: body checksum", ErrCorruptTable)
	}
	if e := t.Entry(0); e.Type != TypeDir || e.Parent != 0 {
		return nil, fmt.Errorf("%w: root is not a directory", ErrCorruptTable)
	}
	woff, wlen := binary.LittleEndian.Uint64(h[200:]), binary.LittleEndian.Uint64(h[208:])
	if woff < tableHeaderSize || woff > size || wlen > size-woff {
		return nil, fmt.Errorf("%w: warnings out of bounds", ErrCorruptTable)
	}
	var ok bool
	if t.warns, ok = parseWarnings(data[woff : woff+wlen]); !ok {
		return nil, fmt.Errorf("%w: warnings", ErrCorruptTable)
	}
	t.nwarn = int64(binary.LittleEndian.Uint64(h[216:]))
	if t.nwarn < int64(len(t.warns)) {
		return nil, fmt.Errorf("%w: warning count", ErrCorruptTable)
	}
	return t, nil
}

// parseWarnings decodes the warnings section.
func parseWarnings(b []byte) ([]Warning, bool) {
	u32 := func() (int, bool) {
		if len(b) < 4 {
			return 0, false
		}
		v := binary.LittleEndian.Uint32(b)
		b = b[4:]
		return int(v), uint64(v) <= uint64(len(b))
	}
	n, ok := u32()
	if !ok || n > maxWarnings {
		return nil, false
	}
	var out []Warning
	for range n {
		k, ok := u32()
		if !ok || k < 1 || k%2 != 1 {
			return nil, false
		}
		strs := make([]string, k)
		for i := range strs {
			l, ok := u32()
			if !ok {
				return nil, false
			}
			strs[i], b = string(b[:l]), b[l:]
		}
		out = append(out, Warning{Msg: strs[0], Attrs: strs[1:]})
	}
	return out, len(b) == 0
}

// Warnings returns the members the build dropped or altered, as far as they were stored (at most 50),
// and how many there were in all.
func (t *Table) Warnings() ([]Warning, int64) { return t.warns, t.nwarn }

// LogWarnings logs the table's warnings at warning level, each with the layer's name, and a count of
// those that were not stored.
func (t *Table) LogWarnings(log *slog.Logger, layer string) {
	for _, w := range t.warns {
		log.Warn(w.Msg, append([]any{"layer", layer}, w.args()...)...)
	}
	if more := t.nwarn - int64(len(t.warns)); more > 0 {
		log.Warn("index: more members dropped or altered", "layer", layer, "not_logged", more)
	}
}

// OpenTable maps a table file and checks it (format, checksums, root). The caller compares Info with
// the layer it expects.
func OpenTable(path string) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return openTableFile(f)
}

func openTableFile(f *os.File) (*Table, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() < tableHeaderSize || st.Size() > 1<<46 {
		return nil, fmt.Errorf("table %s: %w: %d bytes", f.Name(), ErrCorruptTable, st.Size())
	}
	data, unmap, err := mapFile(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("mapping table %s: %w", f.Name(), err)
	}
	t, err := parseTableCRC(data, func() (uint32, error) { return fileCRC(f, tableHeaderSize, st.Size()) })
	if err != nil {
		unmap()
		return nil, fmt.Errorf("table %s: %w", f.Name(), err)
	}
	t.unmap = unmap
	return t, nil
}

// fileCRC returns the crc32c of f's bytes from off to end, read through a small buffer: the pages stay
// in the page cache, out of the process's resident memory.
func fileCRC(f *os.File, off, end int64) (uint32, error) {
	buf := make([]byte, 256<<10)
	var crc uint32
	for off < end {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), end-off)], off)
		crc = crc32.Update(crc, tableCRC, buf[:n])
		off += int64(n)
		if err != nil && off < end {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, fmt.Errorf("reading table %s: %w", f.Name(), err)
		}
	}
	return crc, nil
}

// Info returns what the table was built from.
func (t *Table) Info() TableInfo { return t.info }

// headerCRC returns the checksum of the table's header, which covers the checksum of the rest: it
// names this table's content.
func (t *Table) headerCRC() uint32 { return binary.LittleEndian.Uint32(t.data[252:256]) }

// Close releases the mapping. The Table and strings or slices it returned must not be used afterwards.
func (t *Table) Close() error {
	if t == nil || t.unmap == nil {
		return nil
	}
	u := t.unmap
	t.unmap = nil
	t.records, t.strs, t.xattrs, t.sparse, t.links, t.data, t.n = nil, nil, nil, nil, nil, nil, 0
	return u()
}

// Len returns the number of entries, the root included.
func (t *Table) Len() int { return t.n }

func (t *Table) rec(id ID) []byte {
	if uint64(id) >= uint64(t.n) {
		return nil
	}
	o := int(id) * recordSize
	return t.records[o : o+recordSize : o+recordSize]
}

// Entry returns the metadata of entry id; the zero Entry for an unknown id.
func (t *Table) Entry(id ID) Entry {
	r := t.rec(id)
	if r == nil {
		return Entry{}
	}
	e := Entry{
		Parent:    ID(binary.LittleEndian.Uint32(r[0:])),
		Type:      Type(r[4]),
		Flags:     Flags(binary.LittleEndian.Uint16(r[6:])),
		Mode:      binary.LittleEndian.Uint32(r[8:]),
		UID:       binary.LittleEndian.Uint32(r[12:]),
		GID:       binary.LittleEndian.Uint32(r[16:]),
		MtimeNsec: binary.LittleEndian.Uint32(r[20:]),
		MtimeSec:  int64(binary.LittleEndian.Uint64(r[24:])),
		Size:      int64(binary.LittleEndian.Uint64(r[32:])),
		Link:      NoID,
	}
	x := binary.LittleEndian.Uint64(r[40:])
	switch e.Type {
	case TypeRegular:
		e.Offset = int64(x)
	case TypeChar, TypeBlock:
		e.Devmajor, e.Devminor = uint32(x), uint32(x>>32)
	case TypeHardlink:
		e.Link = ID(x)
	}
	return e
}

// strings returns the name and link bytes of a record; nil for a malformed record.
func (t *Table) nameLink(id ID) (name, link []byte) {
	r := t.rec(id)
	if r == nil {
		return nil, nil
	}
	off := uint64(binary.LittleEndian.Uint32(r[48:]))
	nl := uint64(binary.LittleEndian.Uint16(r[52:]))
	ll := uint64(binary.LittleEndian.Uint16(r[54:]))
	if off+nl+ll > uint64(len(t.strs)) {
		return nil, nil
	}
	return t.strs[off : off+nl], t.strs[off+nl : off+nl+ll]
}

// Name returns the base name of entry id; "" for the root.
func (t *Table) Name(id ID) string {
	n, _ := t.nameLink(id)
	return string(n)
}

// LinkName returns a symlink's target verbatim, or a hardlink's target path (normalised, relative to
// the layer root; for a chain that leaves the layer, the path it ends at).
func (t *Table) LinkName(id ID) string {
	_, l := t.nameLink(id)
	return string(l)
}

// Path returns the path of entry id relative to the root ("a/b/c"); "" for the root.
func (t *Table) Path(id ID) string {
	// Parents always have smaller IDs, which bounds the walk even in a malformed file.
	size := 0
	for cur := id; cur != 0; {
		r := t.rec(cur)
		if r == nil {
			return ""
		}
		n, _ := t.nameLink(cur)
		size += len(n) + 1
		p := ID(binary.LittleEndian.Uint32(r[0:]))
		if p >= cur {
			return ""
		}
		cur = p
	}
	if size == 0 {
		return ""
	}
	buf := make([]byte, size-1)
	end := len(buf)
	for cur := id; cur != 0; cur = ID(binary.LittleEndian.Uint32(t.rec(cur)[0:])) {
		n, _ := t.nameLink(cur)
		copy(buf[end-len(n):], n)
		end -= len(n)
		if end > 0 {
			end--
			buf[end] = '/'
		}
	}
	return string(buf)
}

// Children returns the contiguous range of a directory's children, sorted bytewise by name.
func (t *Table) Children(dir ID) (first ID, n int) {
	r := t.rec(dir)
	if r == nil || Type(r[4]) != TypeDir {
		return 0, 0
	}
	x := binary.LittleEndian.Uint64(r[40:])
	f, c := uint64(uint32(x)), x>>32
	if c == 0 || f <= uint64(dir) || f+c > uint64(t.n) {
		return 0, 0
	}
	return ID(f), int(c)
}

// Lookup finds name among the children of dir by binary search.
func (t *Table) Lookup(dir ID, name string) (ID, bool) {
	first, n := t.Children(dir)
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		nm, _ := t.nameLink(first + ID(m))
		if string(nm) < name {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < n {
		if nm, _ := t.nameLink(first + ID(lo)); string(nm) == name {
			return first + ID(lo), true
		}
	}
	return NoID, false
}

// HasXattrs reports whether any entry has extended attributes.
func (t *Table) HasXattrs() bool { return len(t.xattrs) > 0 }

// HasXattr reports whether an entry may have the extended attribute called name: it looks through
// every stored attribute (an attribute of a member that a later one of the same name replaced counts
// too). A table whose attributes cannot be read to the end says yes.
func (t *Table) HasXattr(name string) bool {
	b := t.xattrs
	for off := uint64(0); off < uint64(len(b)); {
		if off+4 > uint64(len(b)) {
			return true
		}
		cnt := uint64(binary.LittleEndian.Uint32(b[off:]))
		off += 4
		for range cnt {
			if off+8 > uint64(len(b)) {
				return true
			}
			nl := uint64(binary.LittleEndian.Uint32(b[off:]))
			vl := uint64(binary.LittleEndian.Uint32(b[off+4:]))
			off += 8
			if nl+vl > uint64(len(b))-off {
				return true
			}
			if string(b[off:off+nl]) == name {
				return true
			}
			off += nl + vl
		}
	}
	return false
}

// Xattrs returns the extended attributes of entry id, sorted by name; nil when it has none.
func (t *Table) Xattrs(id ID) []Xattr {
	r := t.rec(id)
	if r == nil || Flags(binary.LittleEndian.Uint16(r[6:]))&FlagXattrs == 0 {
		return nil
	}
	b := t.xattrs
	off := uint64(binary.LittleEndian.Uint32(r[56:]))
	if off+4 > uint64(len(b)) {
		return nil
	}
	cnt := uint64(binary.LittleEndian.Uint32(b[off:]))
	off += 4
	if cnt > (uint64(len(b))-off)/8 {
		return nil
	}
	out := make([]Xattr, 0, cnt)
	for i := uint64(0); i < cnt; i++ {
		if off+8 > uint64(len(b)) {
			return nil
		}
		nl := uint64(binary.LittleEndian.Uint32(b[off:]))
		vl := uint64(binary.LittleEndian.Uint32(b[off+4:]))
		off += 8
		if nl+vl > uint64(len(b))-off {
			return nil
		}
		out = append(out, Xattr{Name: string(b[off : off+nl]), Value: bytes.Clone(b[off+nl : off+nl+vl])})
		off += nl + vl
	}
	return out
}

// sparseMap returns the raw regions of entry id's sparse map and their count.
func (t *Table) sparseMap(id ID) ([]byte, int) {
	r := t.rec(id)
	if r == nil || Flags(binary.LittleEndian.Uint16(r[6:]))&FlagSparse == 0 {
		return nil, 0
	}
	b := t.sparse
	off := uint64(binary.LittleEndian.Uint32(r[60:]))
	if off+8 > uint64(len(b)) {
		return nil, 0
	}
	cnt := uint64(binary.LittleEndian.Uint32(b[off:]))
	off += 8
	if cnt > (uint64(len(b))-off)/24 {
		return nil, 0
	}
	return b[off : off+24*cnt], int(cnt)
}

func sparseRegion(raw []byte, i int) SparseRegion {
	b := raw[24*i : 24*i+24]
	return SparseRegion{
		Offset:   int64(binary.LittleEndian.Uint64(b[0:])),
		Length:   int64(binary.LittleEndian.Uint64(b[8:])),
		Physical: int64(binary.LittleEndian.Uint64(b[16:])),
	}
}

// SparseRegions yields the data regions of a sparse file (Entry.Flags has FlagSparse) in ascending
// order, without copying the map; nothing otherwise.
func (t *Table) SparseRegions(id ID) iter.Seq[SparseRegion] {
	return func(yield func(SparseRegion) bool) {
		raw, n := t.sparseMap(id)
		for i := range n {
			if !yield(sparseRegion(raw, i)) {
				return
			}
		}
	}
}

// Hardlinks returns the IDs of every TypeHardlink entry, ascending. The slice may share the table's
// memory: it must not be modified, nor used after Close.
func (t *Table) Hardlinks() []ID {
	n := len(t.links) / 4
	if n == 0 {
		return nil
	}
	if hostLittleEndian && uintptr(unsafe.Pointer(&t.links[0]))%4 == 0 {
		return unsafe.Slice((*ID)(unsafe.Pointer(&t.links[0])), n)
	}
	out := make([]ID, n)
	for i := range out {
		out[i] = ID(binary.LittleEndian.Uint32(t.links[4*i:]))
	}
	return out
}

var hostLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

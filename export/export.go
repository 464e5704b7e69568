package export

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

// Options configure Write.
type Options struct {
	// Logger receives warnings about what a tar cannot carry (sockets, names or xattr names it cannot
	// represent), which is skipped; nil discards them.
	Logger *slog.Logger
	// Progress, when set, is called at most about ten times a second while exporting, and once at the
	// end, with the members and the bytes of the stream written so far.
	Progress func(entries, bytes int64)
	// Skip, when set, is asked about every regular file (its member name, like "a/b.tar"); true leaves
	// the file out with the warning GNU tar gives for its own archive. The caller uses it to skip the
	// output it is writing when that lies inside the view.
	Skip func(name string) bool
}

// Stats say what Write wrote.
type Stats struct {
	// Entries is the number of tar members written (PAX extended headers not counted).
	Entries int64
	// Bytes is the number of bytes of the tar stream written to the writer, the end-of-archive marker
	// included.
	Bytes int64
}

// exportBufSize is the size of Write's one buffer: headers and file data are gathered in it and
// written out in writes of this size.
const exportBufSize = 1 << 20

// sendfileMin is the smallest file whose data is copied by sendfile(2) from a layer file straight to
// w when w is a file or a pipe; smaller ones are gathered in the buffer with the headers.
const sendfileMin = 256 << 10

// progressEvery is the minimum interval between two Progress calls.
const progressEvery = 100 * time.Millisecond

// Write writes the merged view v to w as one flat, uncompressed tar stream, as `docker export` does:
// every path below the root (the root itself has no member), depth first with each directory's
// children in bytewise order, so the output is deterministic. Member names have no "./" prefix and
// directories end in "/". The format is POSIX pax: numeric owners only (no user or group names), the
// permission bits with setuid, setgid and sticky, modification times with nanoseconds, and extended
// attributes as SCHILY.xattr.* records (binary values kept; empty ones skipped with a warning, as pax
// reads an empty record as a deletion). Hard links stay hard links: the first
// name met of a node with several names is written as the file, later ones as links to that name.
// Symlink targets are written verbatim; devices carry their numbers; whiteouts and opaque markers are
// never written (the view hides them). What a tar cannot hold (sockets) is skipped with a warning.
//
// Nothing is staged and nothing is held whole in memory. Headers are formatted, and file data read
// through Open straight from the layers, into one 1 MiB buffer that is written out when full. A file
// of 256 KiB or more that is a plain range of a layer file (File.FileRange) goes from that file to w by
// sendfile(2) on Linux when w is an *os.File (a pipe, a file, a socket), without passing through user
// space. w only gets sequential writes, so it may be a pipe. ctx is checked between members and between
// buffers. On error the stream written so far is incomplete.
func Write(ctx context.Context, v *overlay.View, w io.Writer, opts Options) (Stats, error) {
	e := &exporter{
		v:        v,
		ctx:      ctx,
		w:        w,
		log:      opts.Logger,
		progress: opts.Progress,
		skip:     opts.Skip,
		last:     time.Now(),
		buf:      make([]byte, 0, exportBufSize),
		path:     make([]byte, 0, 256),
		links:    map[overlay.Node]*exportLink{},
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	err := e.walk()
	if err == nil {
		e.zeros(2 * blockSize) // end-of-archive marker
		err = e.flush()
	}
	if e.progress != nil {
		e.progress(e.stats.Entries, e.stats.Bytes)
	}
	if err != nil {
		return e.stats, fmt.Errorf("exporting: %w", err)
	}
	return e.stats, nil
}

// EmptyXattrNote explains why an xattr with an empty value is left out of a tar: POSIX pax reads an
// empty record as "delete the keyword", and Go's archive/tar, umoci and imgfs's own mounts drop it.
const EmptyXattrNote = "skipping an xattr with an empty value: a tar record cannot hold one (pax reads it as a deletion)"

// blockSize is the tar block size.
const blockSize = 512

// exporter is the state of one Write.
type exporter struct {
	v        *overlay.View
	ctx      context.Context
	w        io.Writer
	log      *slog.Logger
	progress func(entries, bytes int64)
	skip     func(name string) bool
	last     time.Time // of the last Progress call
	tick     int       // members since the clock was last read

	buf   []byte // pending output; its capacity is the write size
	stats Stats
	err   error // the first write error: nothing more is written after it

	noSendfile bool // sendFile could not copy to w: copy through the buffer

	// A read-ahead window over a layer file, for small files whose data follows the previous one's
	// closely (tar order and export order often agree): one pread then serves many members.
	ra      []byte   // the window's data, ra[0] at file offset raOff
	raBuf   []byte   // the window's storage, allocated on first use
	raFile  *os.File // the file of the window and of the last small file read
	raOff   int64
	lastEnd int64 // file offset just past the last small file read from raFile

	path  []byte                       // the current member's name
	pax   []byte                       // the current member's PAX records
	links map[overlay.Node]*exportLink // hard-linked nodes with names still to come
	xs    []index.Xattr                // scratch for sorting xattrs
	dirs  []exportDir                  // the directories being walked, outermost first
	num   [32]byte                     // scratch for formatting numbers

	sparse *exportSparse // the sparse file whose header is being written, or nil
}

// exportLink is a node with several names whose first name has been written.
type exportLink struct {
	name string // the member name the later names link to
	left uint32 // names still to come
}

// exportDir is a directory being walked.
type exportDir struct {
	d    *overlay.Dir
	next int // index of the next entry
	plen int // length of the directory's member name ("a/b/"), a prefix of every child's
}

// walk writes every member, depth first.
func (e *exporter) walk() error {
	d, err := e.v.ReadDir(overlay.Root)
	if err != nil {
		return fmt.Errorf("reading the root directory: %w", err)
	}
	e.dirs = append(e.dirs[:0], exportDir{d: d})
	for len(e.dirs) > 0 {
		top := &e.dirs[len(e.dirs)-1]
		if top.next >= top.d.Len() {
			e.dirs = e.dirs[:len(e.dirs)-1]
			continue
		}
		de := top.d.Entry(top.next)
		top.next++
		e.path = append(e.path[:top.plen], de.Name...)
		if err := e.ctx.Err(); err != nil {
			return err
		}
		if !validName(de.Name) {
			e.log.Warn("export: skipping an entry whose name a tar cannot hold", "path", string(e.path))
			continue
		}
		sub, err := e.member(de.Node)
		if errors.Is(err, overlay.ErrNotExist) {
			// Only a view that changes while it is exported can get here: the entry went away.
			e.log.Warn("export: entry vanished while exporting", "path", string(e.path))
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", e.path, err)
		}
		if sub != nil {
			e.dirs = append(e.dirs, exportDir{d: sub, plen: len(e.path)})
		}
		e.ticked()
	}
	return nil
}

// validName reports whether a directory entry's name can be one component of a member name.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && strings.IndexByte(name, '/') < 0 &&
		strings.IndexByte(name, 0) < 0
}

// member writes the member for node n named e.path; for a directory it appends the "/" to e.path and
// returns the listing to walk next.
func (e *exporter) member(n overlay.Node) (*overlay.Dir, error) {
	a, err := e.v.Attr(n)
	if err != nil {
		return nil, err
	}
	if a.Type == index.TypeRegular && e.skip != nil && e.skip(string(e.path)) {
		e.log.Warn("export: file is the archive; not dumped", "path", string(e.path))
		return nil, nil
	}
	if a.Type != index.TypeDir && a.Nlink > 1 {
		if l := e.links[n]; l != nil {
			if err := e.header(&a, tarLink, 0, l.name, nil); err != nil {
				return nil, err
			}
			if l.left--; l.left == 0 {
				delete(e.links, n)
			}
			return nil, nil
		}
	}
	var xs []index.Xattr
	switch a.Type {
	case index.TypeDir, index.TypeRegular, index.TypeSymlink, index.TypeChar, index.TypeBlock, index.TypeFIFO:
		if xs, err = e.v.Xattrs(n); err != nil {
			return nil, err
		}
	default:
		e.log.Warn("export: skipping an entry a tar cannot hold (a socket?)", "path", string(e.path),
			"type", a.Type.String())
		return nil, nil
	}
	var d *overlay.Dir
	switch a.Type {
	case index.TypeDir:
		// List it before writing its member, so that a directory that cannot be listed fails cleanly.
		if d, err = e.v.ReadDir(n); err != nil {
			return nil, err
		}
		e.path = append(e.path, '/')
		err = e.header(&a, tarDir, 0, "", xs)
	case index.TypeRegular:
		err = e.file(n, &a, xs)
	case index.TypeSymlink:
		var target string
		if target, err = e.v.LinkTarget(n); err != nil { // too long for readlink is not too long for a tar
			return nil, err
		}
		if strings.IndexByte(target, 0) >= 0 {
			e.log.Warn("export: skipping a symlink whose target holds a NUL byte", "path", string(e.path))
			return nil, nil
		}
		err = e.header(&a, tarSymlink, 0, target, xs)
	case index.TypeChar:
		err = e.header(&a, tarChar, 0, "", xs)
	case index.TypeBlock:
		err = e.header(&a, tarBlock, 0, "", xs)
	case index.TypeFIFO:
		err = e.header(&a, tarFIFO, 0, "", xs)
	}
	if err != nil {
		return nil, err
	}
	if a.Type != index.TypeDir && a.Nlink > 1 {
		e.links[n] = &exportLink{name: string(e.path), left: a.Nlink - 1}
	}
	return d, nil
}

// file writes a regular file's member and data.
func (e *exporter) file(n overlay.Node, a *overlay.Attr, xs []index.Xattr) error {
	f, err := e.v.Open(n)
	if err != nil {
		return err
	}
	defer f.Close()
	size := f.Size()
	if size < 0 {
		return fmt.Errorf("negative size %d: %w", size, overlay.ErrInvalid)
	}
	if rs, ok, err := dataRegions(f, size); err != nil {
		return fmt.Errorf("finding the holes: %w", err)
	} else if ok {
		return e.sparseFile(f, a, xs, size, rs)
	}
	if err := e.header(a, tarRegular, size, "", xs); err != nil {
		return err
	}
	var r io.ReaderAt = f
	var base, off int64
	if rf, roff, ok := f.FileRange(); ok && size < sendfileMin {
		if data, ok := e.window(rf, roff, size); ok {
			if err := e.put(data); err != nil {
				return err
			}
			if err := overlay.CheckSource(f); err != nil {
				return err
			}
			e.zeros(padding(size))
			return nil
		}
	}
	if rf, roff, ok := f.FileRange(); ok {
		r, base = rf, roff // read the layer's file directly: no per-read bookkeeping of the layer
		if size >= sendfileMin && !e.noSendfile {
			if err := e.flush(); err != nil {
				return err
			}
			k, handled, err := sendFile(e.w, rf, roff, size, e.sent)
			if err != nil {
				return fmt.Errorf("copying data: %w", err)
			}
			e.noSendfile = !handled
			off = k
		}
	}
	if err := e.copyData(r, base+off, size-off); err != nil {
		return err
	}
	// The FileRange paths read the layer's file directly, without the layer's own check.
	if err := overlay.CheckSource(f); err != nil {
		return err
	}
	e.zeros(padding(size))
	return nil
}

// Read-ahead window limits: its size, and how far after the previous small file the next one may start
// for the reads to count as sequential.
const (
	raSize = 1 << 20
	raGap  = 64 << 10
)

// window returns the size bytes at off of layer file rf from the read-ahead window, refilling it when
// the read continues the previous one; ok is false when the caller should read the data itself.
func (e *exporter) window(rf *os.File, off, size int64) ([]byte, bool) {
	same := rf == e.raFile
	seq := same && off >= e.lastEnd && off-e.lastEnd <= raGap
	hit := same && e.ra != nil && off >= e.raOff && off+size <= e.raOff+int64(len(e.ra))
	e.raFile, e.lastEnd = rf, off+size
	if !same {
		e.ra = nil // the window holds another file's bytes
	}
	if hit {
		return e.ra[off-e.raOff : off-e.raOff+size], true
	}
	if !seq {
		return nil, false
	}
	if e.raBuf == nil {
		e.raBuf = make([]byte, raSize)
	}
	n, err := rf.ReadAt(e.raBuf, off)
	if int64(n) < size {
		e.ra = nil
		if err == nil {
			err = io.ErrNoProgress
		}
		return nil, false // let the plain path read it and report the problem
	}
	e.ra, e.raOff = e.raBuf[:n], off
	return e.ra[:size], true
}

// sent accounts for n bytes copied by sendFile, and is where it stops on ctx.
func (e *exporter) sent(n int64) error {
	e.stats.Bytes += n
	e.report()
	return e.ctx.Err()
}

// padding returns the zeros that complete a member of size bytes to whole blocks.
func padding(size int64) int { return int(-size & (blockSize - 1)) }

// ticked calls Progress when it is due; it reads the clock once every 64 directory entries.
func (e *exporter) ticked() {
	if e.progress == nil {
		return
	}
	if e.tick++; e.tick < 64 {
		return
	}
	e.tick = 0
	e.report()
}

// report calls Progress if the last call is long enough ago.
func (e *exporter) report() {
	if e.progress == nil {
		return
	}
	if now := time.Now(); now.Sub(e.last) >= progressEvery {
		e.last = now
		e.progress(e.stats.Entries, e.stats.Bytes)
	}
}

// flush writes the pending output. After a write error it writes nothing and returns that error.
func (e *exporter) flush() error {
	if e.err != nil {
		e.buf = e.buf[:0]
		return e.err
	}
	if len(e.buf) == 0 {
		return nil
	}
	k, err := e.w.Write(e.buf)
	e.stats.Bytes += int64(k)
	if err == nil && k < len(e.buf) {
		err = io.ErrShortWrite
	}
	e.buf = e.buf[:0]
	if err != nil {
		e.err = fmt.Errorf("writing: %w", err)
		return e.err
	}
	e.report()
	return nil
}

// room makes n bytes of room in the buffer (n <= its capacity), flushing it if needed.
func (e *exporter) room(n int) error {
	if cap(e.buf)-len(e.buf) < n {
		return e.flush()
	}
	return nil
}

// put appends p to the output, flushing as needed.
func (e *exporter) put(p []byte) error {
	for len(p) > 0 {
		if len(e.buf) == cap(e.buf) {
			if err := e.flush(); err != nil {
				return err
			}
		}
		k := copy(e.buf[len(e.buf):cap(e.buf)], p)
		e.buf = e.buf[:len(e.buf)+k]
		p = p[k:]
	}
	return nil
}

// zeros appends n zero bytes, flushing as needed; a write error is kept for the next flush to return.
func (e *exporter) zeros(n int) {
	for n > 0 {
		if len(e.buf) == cap(e.buf) {
			if e.flush() != nil {
				return
			}
		}
		k := min(n, cap(e.buf)-len(e.buf))
		m := len(e.buf)
		e.buf = e.buf[:m+k]
		clear(e.buf[m:])
		n -= k
	}
}

// Member types written (the ustar typeflags).
const (
	tarRegular = '0'
	tarLink    = '1'
	tarSymlink = '2'
	tarChar    = '3'
	tarBlock   = '4'
	tarDir     = '5'
	tarFIFO    = '6'
	tarPAX     = 'x'
)

// Ranges of the ustar numeric fields in octal.
const (
	max7  = 1<<21 - 1 // 7 octal digits: mode, uid, gid, devmajor, devminor
	max11 = 1<<33 - 1 // 11 octal digits: size, mtime
)

// header writes the member header for e.path: a PAX extended header first when the member needs one,
// then the ustar header.
func (e *exporter) header(a *overlay.Attr, typ byte, size int64, link string, xs []index.Xattr) error {
	name := e.path
	if e.sparse != nil {
		name = e.sparse.name
	}
	prefix, short, fits := splitUstar(name)
	e.pax = e.pax[:0]
	// Names are bytes: a path record that is not UTF-8 is kept as is by GNU tar (which knows no
	// hdrcharset record) and by Go's reader.
	if !fits {
		e.recordBytes("path", name)
	}
	if len(link) > 100 {
		e.record("linkpath", link)
	}
	if int64(a.UID) > max7 {
		e.recordBytes("uid", strconv.AppendUint(e.num[:0], uint64(a.UID), 10))
	}
	if int64(a.GID) > max7 {
		e.recordBytes("gid", strconv.AppendUint(e.num[:0], uint64(a.GID), 10))
	}
	if size > max11 {
		e.recordBytes("size", strconv.AppendInt(e.num[:0], size, 10))
	}
	if a.MtimeNsec != 0 || a.MtimeSec < 0 || a.MtimeSec > max11 {
		e.recordBytes("mtime", appendPAXTime(e.num[:0], a.MtimeSec, a.MtimeNsec))
	}
	if len(xs) > 0 {
		if !slices.IsSortedFunc(xs, cmpXattr) {
			e.xs = append(e.xs[:0], xs...)
			slices.SortFunc(e.xs, cmpXattr)
			xs = e.xs
		}
		for _, x := range xs {
			if x.Name == "" || strings.ContainsAny(x.Name, "=\x00") {
				e.log.Warn("export: skipping an xattr whose name a tar cannot hold", "path", string(e.path),
					"xattr", x.Name)
				continue
			}
			if len(x.Value) == 0 {
				e.log.Warn("export: "+EmptyXattrNote, "path", string(e.path), "xattr", x.Name)
				continue
			}
			e.recordXattr(x)
		}
	}
	if e.sparse != nil {
		e.sparseRecords()
	}

	if len(e.pax) > 0 {
		if err := e.room(blockSize); err != nil {
			return err
		}
		b := e.block()
		paxName(b[0:100], name)
		octal(b[100:108], 0o644)
		octal(b[108:116], 0)
		octal(b[116:124], 0)
		octal(b[124:136], fit(int64(len(e.pax)), max11))
		octal(b[136:148], 0)
		b[156] = tarPAX
		ustarMagic(b)
		checksum(b)
		if err := e.put(e.pax); err != nil {
			return err
		}
		e.zeros(padding(int64(len(e.pax))))
	}

	if err := e.room(blockSize); err != nil {
		return err
	}
	b := e.block()
	if fits {
		copy(b[0:100], short)
		copy(b[345:500], prefix)
	} else {
		copy(b[0:100], name) // truncated; the path record holds it whole
	}
	// Values too big for their field are in PAX records; the field keeps a valid 0.
	octal(b[100:108], int64(a.Mode&0o7777))
	octal(b[108:116], fit(int64(a.UID), max7))
	octal(b[116:124], fit(int64(a.GID), max7))
	octal(b[124:136], fit(size, max11))
	octal(b[136:148], fit(a.MtimeSec, max11))
	b[156] = typ
	e.stats.Entries++
	copy(b[157:257], link) // truncated when too long; the linkpath record holds it whole
	ustarMagic(b)
	if typ == tarChar || typ == tarBlock {
		// No PAX record holds device numbers: past 7 octal digits (never on Linux, whose majors have
		// 12 bits and minors 20) they are written in base 256, as GNU tar does.
		numeric(b[329:337], int64(a.Devmajor))
		numeric(b[337:345], int64(a.Devminor))
	}
	checksum(b)
	return nil
}

// fit returns v when 0 <= v <= limit, else 0.
func fit(v, limit int64) int64 {
	if v < 0 || v > limit {
		return 0
	}
	return v
}

// block appends a zeroed block to the buffer, which must have room for it, and returns it.
func (e *exporter) block() []byte {
	m := len(e.buf)
	e.buf = e.buf[:m+blockSize]
	b := e.buf[m : m+blockSize]
	clear(b)
	return b
}

func cmpXattr(a, b index.Xattr) int { return strings.Compare(a.Name, b.Name) }

// splitUstar splits a member name into the ustar prefix and name fields: fits is false when the name
// needs a PAX path record.
func splitUstar(name []byte) (prefix, short []byte, fits bool) {
	if len(name) <= 100 {
		return nil, name, true
	}
	// The name field must hold what follows the last '/' used (a directory's trailing "/" included);
	// the prefix field holds up to 155 bytes before it.
	end := min(len(name)-1, 156) // the split '/' must leave a non-empty name: index < len-1
	i := bytes.LastIndexByte(name[:end], '/')
	if i <= 0 || len(name)-i-1 > 100 {
		return nil, nil, false
	}
	return name[:i], name[i+1:], true
}

// paxName fills field with the name of the PAX header of member name: "PaxHeaders.0/" and the member's
// base name, truncated to the field (readers do not use it).
func paxName(field []byte, name []byte) {
	base := bytes.TrimSuffix(name, []byte("/"))
	if i := bytes.LastIndexByte(base, '/'); i >= 0 {
		base = base[i+1:]
	}
	n := copy(field, "PaxHeaders.0/")
	copy(field[n:], base)
}

// record appends the PAX record "len key=value\n".
func (e *exporter) record(key, value string) {
	e.pax = appendRecordHead(e.pax, len(key), len(value))
	e.pax = append(e.pax, key...)
	e.pax = append(e.pax, '=')
	e.pax = append(e.pax, value...)
	e.pax = append(e.pax, '\n')
}

// recordBytes is record with a []byte value.
func (e *exporter) recordBytes(key string, value []byte) {
	e.pax = appendRecordHead(e.pax, len(key), len(value))
	e.pax = append(e.pax, key...)
	e.pax = append(e.pax, '=')
	e.pax = append(e.pax, value...)
	e.pax = append(e.pax, '\n')
}

// recordXattr appends the record "len SCHILY.xattr.NAME=VALUE\n"; the value is raw bytes, which the
// record's length makes safe.
func (e *exporter) recordXattr(x index.Xattr) {
	const pfx = "SCHILY.xattr."
	e.pax = appendRecordHead(e.pax, len(pfx)+len(x.Name), len(x.Value))
	e.pax = append(e.pax, pfx...)
	e.pax = append(e.pax, x.Name...)
	e.pax = append(e.pax, '=')
	e.pax = append(e.pax, x.Value...)
	e.pax = append(e.pax, '\n')
}

// appendRecordHead appends "len " for a record of a key and value of those lengths: len counts the
// whole record, its own digits included.
func appendRecordHead(b []byte, klen, vlen int) []byte {
	rest := 1 + klen + 1 + vlen + 1 // " " key "=" value "\n"
	n := rest + 1
	for digits(n) != n-rest {
		n = rest + digits(n)
	}
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, ' ')
}

func digits(n int) int {
	d := 1
	for n >= 10 {
		n /= 10
		d++
	}
	return d
}

// appendPAXTime formats sec + nsec/1e9 as a PAX time: a decimal number of seconds, with the fraction
// only when there is one.
func appendPAXTime(b []byte, sec int64, nsec uint32) []byte {
	nsec %= 1e9
	if sec < 0 && nsec != 0 {
		b = append(b, '-')
		b = strconv.AppendUint(b, uint64(-(sec + 1)), 10)
		nsec = 1e9 - nsec
	} else {
		b = strconv.AppendInt(b, sec, 10)
	}
	if nsec == 0 {
		return b
	}
	b = append(b, '.')
	var frac [9]byte
	for i := 8; i >= 0; i-- {
		frac[i] = byte('0' + nsec%10)
		nsec /= 10
	}
	return append(b, bytes.TrimRight(frac[:], "0")...)
}

// octal fills a numeric field with v (0 <= v, fitting the field) in octal, NUL-terminated.
func octal(field []byte, v int64) {
	i := len(field) - 1
	field[i] = 0
	for i--; i >= 0; i-- {
		field[i] = byte('0' + v&7)
		v >>= 3
	}
}

// numeric fills a numeric field with v >= 0: octal when it fits, else GNU base-256 (big-endian, high
// bit of the first byte set), which GNU tar and Go's reader accept in any format.
func numeric(field []byte, v int64) {
	if v < 1<<(3*(len(field)-1)) {
		octal(field, v)
		return
	}
	for i := len(field) - 1; i > 0; i-- {
		field[i] = byte(v)
		v >>= 8
	}
	field[0] = 0x80
}

// ustarMagic sets the POSIX ustar magic and version.
func ustarMagic(b []byte) {
	copy(b[257:263], "ustar\x00")
	copy(b[263:265], "00")
}

// checksum sets the header's checksum: the sum of its bytes with the checksum field as spaces.
func checksum(b []byte) {
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b[:blockSize] {
		sum += int64(c)
	}
	octal(b[148:155], sum)
	b[155] = ' '
}

package compression

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"

	"github.com/imgfs/imgfs/internal/atomicfile"
	"github.com/imgfs/imgfs/internal/digests"
)

// Persisted restart points of a compressed stream live in
// CacheDir/stream/v<streamVersion>/sha256/<blob hex>[-<diff_id hex>].{gzi,zti,raw} (the diff_id part
// when the stream is a layer opened with a claimed diff_id). A .gzi or .zti file is
//
//	header (streamHeaderSize bytes) | gzip windows, each up to 32 KiB | point table
//
// The header carries the blob digest and size it was built for, the uncompressed size, the diff_id,
// the identity of the .raw copy and a CRC-32C of the table; each point carries the CRC-32C of its
// window, checked whenever the window is read. A .raw file is the decompressed copy of a zstd stream
// that has no useful restart points. Files are renamed into place only once the stream was verified
// (see Open): a stream that did not match its claims leaves nothing behind.
const (
	streamVersion    = 3 // 3: windows may be stored deflated (pointFlagDeflated); gzip points every 1 MiB
	streamHeaderSize = 160
	pointSize        = 40
	windowSize       = 32 << 10

	streamFlagRaw = 1 // zstd: served from the .raw copy; the table is empty

	pointFlagMember   = 1 // gzip: the point is the start of a member's header
	pointFlagDeflated = 2 // gzip: the window is stored as raw deflate (WinLen and WinCRC are the stored bytes')
)

var (
	streamMagicGzip = [8]byte{'I', 'M', 'G', 'F', 'S', 'G', 'Z', 'I'}
	streamMagicZstd = [8]byte{'I', 'M', 'G', 'F', 'S', 'Z', 'T', 'I'}

	castagnoli = crc32.MakeTable(crc32.Castagnoli)

	// errStale marks a persisted index that does not match the blob or is corrupt: it is rebuilt.
	errStale = errors.New("compression: stale or corrupt stream index")
)

// point is a restart point in a compressed stream: decoding may start at compressed offset In (plus Bits
// bits, gzip) and yields the uncompressed stream from Out, given the window (gzip) stored at WinOff.
type point struct {
	Out, In int64
	WinOff  int64
	WinLen  uint32
	WinCRC  uint32
	Bits    uint8
	Flags   uint8
}

func (p *point) encode(b []byte) {
	binary.LittleEndian.PutUint64(b[0:], uint64(p.Out))
	binary.LittleEndian.PutUint64(b[8:], uint64(p.In))
	binary.LittleEndian.PutUint64(b[16:], uint64(p.WinOff))
	binary.LittleEndian.PutUint32(b[24:], p.WinLen)
	binary.LittleEndian.PutUint32(b[28:], p.WinCRC)
	b[32] = p.Bits
	b[33] = p.Flags
	clear(b[34:pointSize])
}

func (p *point) decode(b []byte) {
	p.Out = int64(binary.LittleEndian.Uint64(b[0:]))
	p.In = int64(binary.LittleEndian.Uint64(b[8:]))
	p.WinOff = int64(binary.LittleEndian.Uint64(b[16:]))
	p.WinLen = binary.LittleEndian.Uint32(b[24:])
	p.WinCRC = binary.LittleEndian.Uint32(b[28:])
	p.Bits = b[32]
	p.Flags = b[33]
}

// streamHeader is the fixed header of a .gzi or .zti file.
type streamHeader struct {
	Magic    [8]byte
	Flags    uint32
	CompSize int64 // size of the blob the index was built for
	Size     int64 // uncompressed size
	NPoints  int64
	TableOff int64
	TableCRC uint32
	DiffID   [32]byte
	Blob     [32]byte // digest of the blob (the cache key); zero when unknown
	Raw      [32]byte // streamFlagRaw: sha256 of the .raw copy's identity (fileIdentity without ctime)

	crc uint32 // header checksum, set by encode and decode
}

func (h *streamHeader) encode() []byte {
	b := make([]byte, streamHeaderSize)
	copy(b[0:8], h.Magic[:])
	binary.LittleEndian.PutUint32(b[8:], streamVersion)
	binary.LittleEndian.PutUint32(b[12:], h.Flags)
	binary.LittleEndian.PutUint64(b[16:], uint64(h.CompSize))
	binary.LittleEndian.PutUint64(b[24:], uint64(h.Size))
	binary.LittleEndian.PutUint64(b[32:], uint64(h.NPoints))
	binary.LittleEndian.PutUint64(b[40:], uint64(h.TableOff))
	binary.LittleEndian.PutUint32(b[48:], h.TableCRC)
	copy(b[56:88], h.DiffID[:])
	copy(b[88:120], h.Blob[:])
	copy(b[120:152], h.Raw[:])
	h.crc = crc32.Checksum(b[:streamHeaderSize-4], castagnoli)
	binary.LittleEndian.PutUint32(b[streamHeaderSize-4:], h.crc)
	return b
}

func (h *streamHeader) decode(b []byte) error {
	if len(b) != streamHeaderSize {
		return fmt.Errorf("%w: short header", errStale)
	}
	if crc32.Checksum(b[:streamHeaderSize-4], castagnoli) != binary.LittleEndian.Uint32(b[streamHeaderSize-4:]) {
		return fmt.Errorf("%w: header checksum mismatch", errStale)
	}
	copy(h.Magic[:], b[0:8])
	if v := binary.LittleEndian.Uint32(b[8:]); v != streamVersion {
		return fmt.Errorf("%w: version %d, want %d", errStale, v, streamVersion)
	}
	h.Flags = binary.LittleEndian.Uint32(b[12:])
	h.CompSize = int64(binary.LittleEndian.Uint64(b[16:]))
	h.Size = int64(binary.LittleEndian.Uint64(b[24:]))
	h.NPoints = int64(binary.LittleEndian.Uint64(b[32:]))
	h.TableOff = int64(binary.LittleEndian.Uint64(b[40:]))
	h.TableCRC = binary.LittleEndian.Uint32(b[48:])
	copy(h.DiffID[:], b[56:88])
	copy(h.Blob[:], b[88:120])
	copy(h.Raw[:], b[120:152])
	h.crc = binary.LittleEndian.Uint32(b[streamHeaderSize-4:])
	return nil
}

// cachePaths says where the persisted index of a stream lives. ok is false when nothing is persisted
// (no cache dir or no key); an invalid key is an error.
func cachePaths(opts Options, ext string) (path string, ok bool, err error) {
	if opts.Key != "" {
		if _, err := digests.CheckSHA256(opts.Key); err != nil {
			return "", false, fmt.Errorf("compression: stream key: %w", err)
		}
	}
	if opts.DiffID != "" {
		if _, err := digests.CheckSHA256(opts.DiffID); err != nil {
			return "", false, fmt.Errorf("compression: diff ID: %w", err)
		}
	}
	if opts.CacheDir == "" || opts.Key == "" {
		return "", false, nil
	}
	name := opts.Key.Encoded()
	if opts.DiffID != "" {
		name += "-" + opts.DiffID.Encoded()
	}
	dir := filepath.Join(opts.CacheDir, "stream", fmt.Sprintf("v%d", streamVersion), "sha256")
	return filepath.Join(dir, name+ext), true, nil
}

// indexWriter writes a .gzi or .zti file: windows are appended while the stream is indexed, the table
// and header at the end. When path is empty, nothing is persisted and the file is an unlinked temporary
// file that lives as long as the Stream.
type indexWriter struct {
	f    *os.File
	path string // final path; "" when not persisted
	off  int64  // append offset
}

// createTemp creates a temporary file next to path or, when path is empty (nothing is persisted), an
// unlinked one in dir (the cache directory, or the system's temporary directory when that is empty too).
func createTemp(path, dir, pattern string) (*os.File, error) {
	if path == "" {
		if dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, err
			}
		}
		f, err := os.CreateTemp(dir, "imgfs-"+pattern)
		if err != nil {
			return nil, err
		}
		if err := os.Remove(f.Name()); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
}

func newIndexWriter(path, tmpDir string) (*indexWriter, error) {
	f, err := createTemp(path, tmpDir, "stream-*")
	if err != nil {
		return nil, fmt.Errorf("creating stream index: %w", err)
	}
	return &indexWriter{f: f, path: path, off: streamHeaderSize}, nil
}

// appendWindow stores a window and returns its offset and CRC.
func (w *indexWriter) appendWindow(win []byte) (off int64, crc uint32, err error) {
	off = w.off
	if _, err := w.f.WriteAt(win, off); err != nil {
		return 0, 0, fmt.Errorf("writing stream index: %w", err)
	}
	w.off += int64(len(win))
	return off, crc32.Checksum(win, castagnoli), nil
}

// finish writes the table and header. The file stays open for reading windows; when it is to be
// persisted, the returned pending renames it into place (after the .raw copy, when there is one).
func (w *indexWriter) finish(h *streamHeader, points []point) (*os.File, Pending, error) {
	table := make([]byte, len(points)*pointSize)
	for i := range points {
		points[i].encode(table[i*pointSize:])
	}
	h.NPoints = int64(len(points))
	h.TableOff = w.off
	h.TableCRC = crc32.Checksum(table, castagnoli)
	if _, err := w.f.WriteAt(table, w.off); err != nil {
		return nil, nil, fmt.Errorf("writing stream index: %w", err)
	}
	if _, err := w.f.WriteAt(h.encode(), 0); err != nil {
		return nil, nil, fmt.Errorf("writing stream index: %w", err)
	}
	var p Pending
	if w.path != "" {
		p = Pending{{f: w.f, path: w.path}}
	}
	f := w.f
	w.f = nil
	return f, p, nil
}

// pendingFile is a finished cache file, still under its temporary name, and the path it is to have.
type pendingFile struct {
	f     *os.File
	path  string
	close bool // close f once it is in place (nothing reads it)
}

// Pending are the files of a finished index in the order they must be put in place. Nothing is renamed
// into the cache before Commit, which the caller calls once the stream was verified; Discard removes
// the temporary names instead (open files stay readable). Both may be called on a nil Pending.
type Pending []pendingFile

func (p Pending) Commit() error {
	for i, pf := range p {
		if err := atomicfile.Rename(pf.f, pf.path); err != nil {
			Pending(p[i:]).Discard()
			return err
		}
		if pf.close {
			pf.f.Close()
		}
	}
	return nil
}

func (p Pending) Discard() {
	for _, pf := range p {
		os.Remove(pf.f.Name())
		if pf.close {
			pf.f.Close()
		}
	}
}

// abort discards the file.
func (w *indexWriter) abort() {
	if w.f == nil {
		return
	}
	if w.path != "" {
		os.Remove(w.f.Name())
	}
	w.f.Close()
	w.f = nil
}

// persisted says how the index of each compressed format is persisted: the extension of its file, the
// magic of its header and what makes a stream of it once it is validated (taking over or closing li.f).
var persisted = map[Format]struct {
	ext       string
	magic     [8]byte
	fromIndex func(blob Blob, li *loadedIndex, opts Options) (*Stream, error)
}{
	Gzip: {".gzi", streamMagicGzip, gzipFromIndex},
	Zstd: {".zti", streamMagicZstd, zstdFromIndex},
}

// newStreamHeader starts the header of a new index of a stream compressed with c, for the blob
// opts.Key of compSize bytes that decompresses to size bytes hashing to diffID.
func newStreamHeader(c Format, opts Options, compSize, size int64, diffID digest.Digest) *streamHeader {
	return &streamHeader{Magic: persisted[c].magic, CompSize: compSize, Size: size, DiffID: diffIDBytes(diffID),
		Blob: diffIDBytes(opts.Key)}
}

// loadPersisted opens a gzip or zstd stream from its persisted index: it finds the file (nil, nil when
// nothing is persisted), validates it against the blob and the key, and makes the stream. Errors are
// those of loadIndex and of the format's own checks.
func loadPersisted(blob Blob, c Format, opts Options) (*Stream, error) {
	pf := persisted[c]
	path, ok, err := cachePaths(opts, pf.ext)
	if err != nil || !ok {
		return nil, err
	}
	li, err := loadIndex(path, pf.magic, blob.Size, opts)
	if err != nil {
		return nil, err
	}
	s, err := pf.fromIndex(blob, li, opts)
	if err != nil {
		return nil, err
	}
	s.hdrCRC = li.hdr.crc
	return s, nil
}

// loadedIndex is a validated .gzi or .zti file.
type loadedIndex struct {
	f      *os.File
	hdr    streamHeader
	points []point
}

// loadIndex opens and validates the persisted index at path for a blob of size compSize. A missing file
// gives an error wrapping os.ErrNotExist; a file that does not match or is damaged, one wrapping
// errStale.
func loadIndex(path string, magic [8]byte, compSize int64, opts Options) (*loadedIndex, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	li, err := readIndex(f, magic, compSize)
	if err == nil {
		// The file name says what the index is for; the header must say the same.
		switch {
		case li.hdr.Blob != diffIDBytes(opts.Key):
			err = fmt.Errorf("%w: built for blob %s, not %s", errStale, diffIDFromBytes(li.hdr.Blob), opts.Key)
		case opts.DiffID != "" && li.hdr.DiffID != diffIDBytes(opts.DiffID):
			err = fmt.Errorf("%w: built for diff ID %s, not %s", errStale, diffIDFromBytes(li.hdr.DiffID), opts.DiffID)
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	li.f = f
	return li, nil
}

func readIndex(f *os.File, magic [8]byte, compSize int64) (*loadedIndex, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	fsize := fi.Size()
	buf := make([]byte, streamHeaderSize)
	if _, err := f.ReadAt(buf, 0); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: short file", errStale)
		}
		return nil, err
	}
	li := &loadedIndex{}
	h := &li.hdr
	if err := h.decode(buf); err != nil {
		return nil, err
	}
	switch {
	case h.Magic != magic:
		return nil, fmt.Errorf("%w: bad magic", errStale)
	case h.CompSize != compSize:
		return nil, fmt.Errorf("%w: built for a blob of %d bytes, this one has %d", errStale, h.CompSize, compSize)
	case h.Size < 0 || h.NPoints < 0 || h.TableOff < streamHeaderSize || h.TableOff > fsize:
		return nil, fmt.Errorf("%w: bad header fields", errStale)
	case (fsize-h.TableOff)%pointSize != 0 || (fsize-h.TableOff)/pointSize != h.NPoints:
		return nil, fmt.Errorf("%w: table size does not match", errStale)
	}
	table := make([]byte, fsize-h.TableOff)
	if _, err := f.ReadAt(table, h.TableOff); err != nil {
		return nil, err
	}
	if crc32.Checksum(table, castagnoli) != h.TableCRC {
		return nil, fmt.Errorf("%w: table checksum mismatch", errStale)
	}
	li.points = make([]point, h.NPoints)
	for i := range li.points {
		li.points[i].decode(table[i*pointSize:])
	}
	if err := validatePoints(li.points, h, compSize); err != nil {
		return nil, err
	}
	if err := verifyWindows(f, li.points); err != nil {
		return nil, err
	}
	return li, nil
}

// verifyWindows checks every window's CRC, so that a damaged file is rebuilt rather than failing reads
// later. It reads about 0.8% of the uncompressed size.
func verifyWindows(f *os.File, points []point) error {
	var buf []byte
	for i := range points {
		p := &points[i]
		if p.WinLen == 0 {
			continue
		}
		if buf == nil {
			buf = make([]byte, windowSize)
		}
		win := buf[:p.WinLen]
		if _, err := f.ReadAt(win, p.WinOff); err != nil {
			return fmt.Errorf("%w: window %d: %w", errStale, i, err)
		}
		if crc32.Checksum(win, castagnoli) != p.WinCRC {
			return fmt.Errorf("%w: window %d checksum mismatch", errStale, i)
		}
	}
	return nil
}

// validatePoints checks that the table is self-consistent, so that no later read trusts an offset
// outside the blob or the index file.
func validatePoints(points []point, h *streamHeader, compSize int64) error {
	if h.Flags&streamFlagRaw != 0 {
		if len(points) != 0 {
			return fmt.Errorf("%w: raw copy with points", errStale)
		}
		return nil
	}
	if len(points) == 0 {
		if h.Size != 0 {
			return fmt.Errorf("%w: no points", errStale)
		}
		return nil
	}
	if points[0].Out != 0 || points[0].In != 0 {
		return fmt.Errorf("%w: first point not at the start", errStale)
	}
	for i := range points {
		p := &points[i]
		bad := p.Out < 0 || p.Out > h.Size || p.In < 0 || p.In >= compSize || p.Bits > 7 ||
			p.Flags&^(pointFlagMember|pointFlagDeflated) != 0 || p.WinLen > windowSize ||
			(p.Flags&pointFlagDeflated != 0 && (p.Flags&pointFlagMember != 0 || p.WinLen == 0)) ||
			(p.WinLen > 0 && (p.WinOff < streamHeaderSize || p.WinOff > h.TableOff-int64(p.WinLen))) ||
			(p.Flags&pointFlagMember != 0 && (p.Bits != 0 || p.WinLen != 0))
		if i > 0 {
			q := &points[i-1]
			bad = bad || p.Out < q.Out || p.In < q.In || (p.Out == q.Out && p.In == q.In)
		}
		if bad {
			return fmt.Errorf("%w: bad point %d", errStale, i)
		}
	}
	return nil
}

// diffIDBytes converts a sha256 digest to its 32 bytes (zero when d is not a valid sha256 digest).
func diffIDBytes(d digest.Digest) (b [32]byte) {
	if h, err := digests.CheckSHA256(d); err == nil {
		hex.Decode(b[:], []byte(h))
	}
	return b
}

// diffIDFromBytes is the inverse of diffIDBytes; all zeros give "".
func diffIDFromBytes(b [32]byte) digest.Digest {
	if b == ([32]byte{}) {
		return ""
	}
	return digest.NewDigestFromBytes(digest.SHA256, b[:])
}

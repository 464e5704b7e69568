package export

import (
	"fmt"
	"io"
	"strconv"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

// maxExportRegions bounds the data regions of a file exported as sparse (the index's limit on the
// sparse maps it reads): a file with more is exported whole, holes written as zeros.
const maxExportRegions = 1 << 18

// exportSparse is the sparse file being written: its data regions and the GNU sparse 1.0 map that
// precedes their data in the member.
type exportSparse struct {
	name    []byte // the member's name in the header: DIR/GNUSparseFile.0/BASE
	regions []index.SparseRegion
	mapText []byte
	size    int64 // the file's size
}

// dataRegions returns the data regions of f when it has holes; ok is false for a file without holes,
// one that cannot tell, or one with too many regions.
func dataRegions(f overlay.File, size int64) (rs []index.SparseRegion, ok bool, err error) {
	ds, can := f.(overlay.DataSeeker)
	if !can || size == 0 {
		return nil, false, nil
	}
	var data int64
	for off := int64(0); off < size; {
		start, found, err := ds.SeekData(off, false)
		if err != nil {
			return nil, false, err
		}
		if !found || start >= size {
			break
		}
		end, found, err := ds.SeekData(start, true)
		if err != nil {
			return nil, false, err
		}
		if !found || end > size {
			end = size
		}
		if end <= start {
			return nil, false, fmt.Errorf("hole at %d for data at %d: %w", end, start, overlay.ErrInvalid)
		}
		if len(rs) == maxExportRegions {
			return nil, false, nil
		}
		rs = append(rs, index.SparseRegion{Offset: start, Length: end - start})
		data += end - start
		off = end
	}
	if data == size {
		return nil, false, nil
	}
	return rs, true, nil
}

// sparseFile writes regular file f, which has holes, as a GNU sparse 1.0 member (the PAX form GNU tar
// writes with --sparse --format=posix, and that GNU tar, bsdtar and Go's archive/tar read): PAX records
// GNU.sparse.major=1, minor=0, name (the real name) and realsize; a header named
// DIR/GNUSparseFile.0/BASE whose data is the map (the number of regions, then each one's offset and
// length, one decimal number a line, padded to a block) followed by the regions' data. A file that
// ends in a hole gets a last region of length 0 at its end, as GNU tar writes, so that extraction
// gives it its whole size.
func (e *exporter) sparseFile(f overlay.File, a *overlay.Attr, xs []index.Xattr, size int64, rs []index.SparseRegion) error {
	sp := &exportSparse{regions: rs, size: size}
	if len(rs) == 0 || rs[len(rs)-1].Offset+rs[len(rs)-1].Length < size {
		sp.regions = append(sp.regions, index.SparseRegion{Offset: size})
	}
	sp.mapText = strconv.AppendInt(nil, int64(len(sp.regions)), 10)
	sp.mapText = append(sp.mapText, '\n')
	var data int64
	for _, r := range sp.regions {
		sp.mapText = strconv.AppendInt(sp.mapText, r.Offset, 10)
		sp.mapText = append(sp.mapText, '\n')
		sp.mapText = strconv.AppendInt(sp.mapText, r.Length, 10)
		sp.mapText = append(sp.mapText, '\n')
		data += r.Length
	}
	dir, base := []byte(nil), e.path
	if i := lastSlash(e.path); i >= 0 {
		dir, base = e.path[:i+1], e.path[i+1:]
	}
	sp.name = append(append(append(sp.name, dir...), "GNUSparseFile.0/"...), base...)
	mapSize := int64(len(sp.mapText)) + int64(padding(int64(len(sp.mapText))))

	e.sparse = sp
	err := e.header(a, tarRegular, mapSize+data, "", xs)
	e.sparse = nil
	if err != nil {
		return err
	}
	if err := e.put(sp.mapText); err != nil {
		return err
	}
	e.zeros(padding(int64(len(sp.mapText))))
	for _, r := range sp.regions {
		if err := e.copyData(f, r.Offset, r.Length); err != nil {
			return err
		}
	}
	e.zeros(padding(mapSize + data))
	return nil
}

// sparseRecords appends the GNU sparse 1.0 records of the sparse file being written.
func (e *exporter) sparseRecords() {
	e.record("GNU.sparse.major", "1")
	e.record("GNU.sparse.minor", "0")
	e.recordBytes("GNU.sparse.name", e.path)
	e.recordBytes("GNU.sparse.realsize", strconv.AppendInt(e.num[:0], e.sparse.size, 10))
}

// copyData appends n bytes of r at off to the output.
func (e *exporter) copyData(r io.ReaderAt, off, n int64) error {
	end := off + n
	for off < end {
		if len(e.buf) == cap(e.buf) {
			if err := e.flush(); err != nil {
				return err
			}
			if err := e.ctx.Err(); err != nil {
				return err
			}
		}
		p := e.buf[len(e.buf):cap(e.buf)]
		if rem := end - off; int64(len(p)) > rem {
			p = p[:rem]
		}
		k, err := r.ReadAt(p, off)
		e.buf = e.buf[:len(e.buf)+k]
		off += int64(k)
		switch {
		case k == len(p):
		case err == nil:
			if k == 0 {
				return fmt.Errorf("reading data at %d: %w", off, io.ErrNoProgress)
			}
		case err == io.EOF:
			return fmt.Errorf("reading data: it ends at %d of %d bytes: %w", off, end, io.ErrUnexpectedEOF)
		default:
			return fmt.Errorf("reading data: %w", err)
		}
	}
	return nil
}

func lastSlash(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '/' {
			return i
		}
	}
	return -1
}

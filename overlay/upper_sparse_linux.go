package overlay

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"github.com/imgfs/imgfs/index"
)

var _ DataSeeker = (*upHandle)(nil)

// SeekData answers SEEK_DATA and SEEK_HOLE from the lower member's sparse map while the file is lower,
// and from the upper file (lseek(2)) once it is copied up.
func (h *upHandle) SeekData(off int64, hole bool) (int64, bool, error) {
	c := h.cur()
	if c.lower != nil {
		return c.lower.SeekData(off, hole)
	}
	whence := unix.SEEK_DATA
	if hole {
		whence = unix.SEEK_HOLE
	}
	pos, err := unix.Seek(int(c.f.Fd()), off, whence)
	if errors.Is(err, unix.ENXIO) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return pos, true, nil
}

// copySparse copies the first size bytes of sparse member id of l to dst by its data regions only,
// leaving the holes as holes (a copy-up of an 8 GiB file with 172 KiB of data reads 172 KiB).
func copySparse(dst *os.File, l Layer, sl SparseLayer, id index.ID, size int64) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for r := range sl.SparseRegions(id) {
		for off, end := r.Offset, min(r.Offset+r.Length, size); off < end; {
			n, err := l.ReadAt(id, buf[:min(int64(len(buf)), end-off)], off)
			if n > 0 {
				if _, werr := dst.WriteAt(buf[:n], off); werr != nil {
					return werr
				}
				off += int64(n)
			}
			if err := copyReadErr(n, err, off, end); err != nil {
				return err
			}
		}
	}
	if err := dst.Truncate(size); err != nil {
		return err
	}
	return dst.Sync()
}

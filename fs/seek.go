package fs

import (
	"math"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/imgfs/imgfs/overlay"
)

// Lseek answers LSEEK, which the kernel sends for SEEK_DATA and SEEK_HOLE only: from the file's sparse
// map (overlay.DataSeeker), so that cp, tar and du see the holes of sparse files; a file that cannot
// tell is data from end to end. An offset at or past the end, or SEEK_DATA with only holes after it,
// is ENXIO, as lseek(2) says.
func (fs *fileSystem[D]) Lseek(cancel <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	f, size, done, st := fs.fileAt(in.NodeId, in.Fh)
	if st != fuse.OK {
		return st
	}
	defer done()
	if in.Whence != unix.SEEK_DATA && in.Whence != unix.SEEK_HOLE {
		return fuse.EINVAL
	}
	if in.Offset > math.MaxInt64 {
		return fuse.Status(unix.ENXIO)
	}
	off, hole := int64(in.Offset), in.Whence == unix.SEEK_HOLE
	var pos int64
	if s, ok := f.(overlay.DataSeeker); ok {
		p, found, err := s.SeekData(off, hole)
		if err != nil {
			return fs.status("lseek", in.NodeId, err)
		}
		if !found {
			return fuse.Status(unix.ENXIO)
		}
		pos = p
	} else {
		switch {
		case off >= size:
			return fuse.Status(unix.ENXIO)
		case hole:
			pos = size
		default:
			pos = off
		}
	}
	out.Offset = uint64(pos)
	return fuse.OK
}

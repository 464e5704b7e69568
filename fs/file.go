package fs

import (
	"errors"
	"io"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/imgfs/imgfs/overlay"
)

// fileHandle is an open regular file. When its data is a plain range of a file, fd and base locate it
// there so that reads are spliced to the kernel without passing through user space.
type fileHandle struct {
	f      overlay.File
	size   int64
	splice bool
	fd     uintptr
	base   int64
}

// Open answers OPEN: any access mode but read-only, and O_TRUNC, fail with EROFS. The reply asks the
// kernel to keep its page cache across opens (FOPEN_KEEP_CACHE), since the data never changes.
func (fs *fileSystem[D]) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if in.Flags&syscall.O_ACCMODE != syscall.O_RDONLY || in.Flags&syscall.O_TRUNC != 0 {
		return fuse.EROFS
	}
	f, err := fs.view.Open(overlay.Node(in.NodeId))
	if err != nil {
		return fs.status("open", in.NodeId, err)
	}
	h := &fileHandle{f: f, size: max(f.Size(), 0)}
	if file, base, ok := f.FileRange(); ok && file != nil {
		h.splice, h.fd, h.base = true, file.Fd(), base
	}
	out.Fh = fs.files.add(h)
	out.OpenFlags = fuse.FOPEN_KEEP_CACHE
	return fuse.OK
}

// Read answers READ, never past the end of the file: a read at or beyond it returns no bytes, which
// the caller sees as end of file, and a read across it is cut short, so that a file lying inside a
// larger one never shows the bytes that follow it.
func (fs *fileSystem[D]) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	h, ok := fs.files.get(in.Fh)
	if !ok {
		return nil, fuse.EBADF
	}
	if in.Offset >= uint64(h.size) {
		return fuse.ReadResultData(nil), fuse.OK
	}
	off := int64(in.Offset)
	n := min(int64(in.Size), int64(len(buf)), h.size-off)
	if h.splice {
		return fuse.ReadResultFd(h.fd, h.base+off, int(n)), fuse.OK
	}
	got, err := h.f.ReadAt(buf[:n], off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fs.status("read", in.NodeId, err)
	}
	return fuse.ReadResultData(buf[:got]), fuse.OK
}

// Release answers RELEASE by forgetting the handle. The file itself belongs to the view.
func (fs *fileSystem[D]) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	fs.files.remove(in.Fh)
}

// Flush answers FLUSH (on every close): there is nothing to write back.
func (fs *fileSystem[D]) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	return fuse.OK
}

// Fsync answers FSYNC: there is nothing to write back.
func (fs *fileSystem[D]) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	return fuse.OK
}

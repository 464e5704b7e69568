package fs

import (
	"errors"
	"io"
	"math"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/imgfs/imgfs/overlay"
)

// fileHandle is an open regular file.
//
// In a read-only view the file never changes: its size is taken once. In a writable view (live) the
// size is asked of the file at every read, since another handle may write, truncate or copy up the file
// meanwhile.
type fileHandle struct {
	f    overlay.File
	w    overlay.WFile // f when opened for writing, else nil
	node overlay.Node
	live bool

	size int64
}

// Open answers OPEN. In a read-only view any access mode but read-only, and O_TRUNC, fail with EROFS,
// and the reply asks the kernel to keep its page cache across opens (FOPEN_KEEP_CACHE), since the data
// never changes. Where the kernel can open files without OPEN (noOpen), a read-only view answers
// ENOSYS instead: the kernel opens every file itself from then on, keeping the page cache, and sends
// no OPEN, FLUSH or RELEASE; READ comes without a handle (see fileAt). In a writable view, opening for
// writing copies the file up first; the page cache is dropped at each open, because only files that
// cannot change keep it.
func (fs *fileSystem[D]) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	n := overlay.Node(in.NodeId)
	write := in.Flags&syscall.O_ACCMODE != syscall.O_RDONLY
	trunc := in.Flags&syscall.O_TRUNC != 0
	if !fs.writable() {
		if write || trunc {
			return fuse.EROFS
		}
		if fs.noOpen {
			return fuse.ENOSYS
		}
		f, err := fs.view.Open(n)
		if err != nil {
			return fs.status("open", in.NodeId, err)
		}
		h := &fileHandle{f: f, node: n, size: max(f.Size(), 0)}
		out.Fh = fs.files.add(h)
		out.OpenFlags = fuse.FOPEN_KEEP_CACHE
		return fuse.OK
	}
	h := &fileHandle{node: n, live: true}
	if write || trunc {
		w, err := fs.wview.OpenFile(n, write, trunc)
		if err != nil {
			return fs.status("open", in.NodeId, err)
		}
		h.f = w
		if write {
			h.w = w
		}
	} else {
		f, err := fs.view.Open(n)
		if err != nil {
			return fs.status("open", in.NodeId, err)
		}
		h.f = f
	}
	out.Fh = fs.files.add(h)
	return fuse.OK
}

// Read answers READ, never past the end of the file: a read at or beyond it returns no bytes, which
// the caller sees as end of file, and a read across it is cut short, so that a file lying inside a
// larger one never shows the bytes that follow it.
//
// Data is always read with ReadAt (pread for a range of the archive), never handed to go-fuse as a
// ReadResultFd: go-fuse splices that with one splice(2) call and answers whatever it moved, and splice
// may move less than asked before the end of the file; the kernel takes a short READ for the end of the
// file and cuts the file there (seen on the corpus: libm.so.6 read 1,568 bytes short now and then).
// pread measured as fast as splice here.
func (fs *fileSystem[D]) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	f, size, done, st := fs.fileAt(in.NodeId, in.Fh)
	if st != fuse.OK {
		return nil, st
	}
	defer done()
	if in.Offset >= uint64(size) {
		return fuse.ReadResultData(nil), fuse.OK
	}
	off := int64(in.Offset)
	n := min(int64(in.Size), int64(len(buf)), size-off)
	got, err := f.ReadAt(buf[:n], off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fs.status("read", in.NodeId, err)
	}
	return fuse.ReadResultData(buf[:got]), fuse.OK
}

// fileAt returns the file that a READ or LSEEK request is about and its size, and a function to call
// when done with it: the handle's, or, for a request without one where the kernel opens files itself
// (noOpen), node's own, opened by node.
func (fs *fileSystem[D]) fileAt(node, fh uint64) (overlay.File, int64, func(), fuse.Status) {
	if h, ok := fs.files.get(fh); ok {
		size := h.size
		if h.live {
			size = max(h.f.Size(), 0)
		}
		return h.f, size, func() {}, fuse.OK
	}
	if fh != 0 || !fs.noOpen {
		return nil, 0, nil, fuse.EBADF
	}
	nf, err := fs.byNode.get(overlay.Node(node), fs.view.Open)
	if err != nil {
		return nil, 0, nil, fs.status("open", node, err)
	}
	return nf.f, nf.size, func() { fs.byNode.put(nf) }, fuse.OK
}

// Write answers WRITE; see Writev.
func (fs *fileSystem[D]) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	return fs.Writev(cancel, in, [][]byte{data})
}

// Writev answers WRITE, whose data may arrive in pieces: EROFS in a read-only view, EBADF on a handle
// not open for writing. With O_APPEND the data goes at the end of the file, whatever the offset says;
// with O_SYNC or O_DSYNC it is synced before the reply.
func (fs *fileSystem[D]) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	if !fs.writable() {
		return 0, fuse.EROFS
	}
	h, ok := fs.files.get(in.Fh)
	if !ok || h.w == nil {
		return 0, fuse.EBADF
	}
	if in.Offset > math.MaxInt64 {
		return 0, fuse.Status(syscall.EFBIG)
	}
	off := int64(in.Offset)
	if in.Flags&syscall.O_APPEND != 0 {
		fs.appendMu.Lock()
		defer fs.appendMu.Unlock()
		off = h.w.Size()
	}
	written := 0
	for _, p := range data {
		n, err := h.w.WriteAt(p, off)
		written += n
		off += int64(n)
		if err != nil {
			if written > 0 {
				break // a short write: the caller retries the rest and then sees the error
			}
			return 0, fs.status("write", in.NodeId, err)
		}
	}
	if in.Flags&(syscall.O_SYNC|syscall.O_DSYNC) != 0 {
		if err := h.w.Sync(); err != nil {
			return 0, fs.status("write", in.NodeId, err)
		}
	}
	return uint32(written), fuse.OK
}

// Release answers RELEASE by forgetting the handle and closing its file when the file can be closed.
func (fs *fileSystem[D]) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	h, ok := fs.files.get(in.Fh)
	fs.files.remove(in.Fh)
	if !ok {
		return
	}
	if err := h.f.Close(); err != nil {
		fs.log.Debug("release: closing the file", "node", uint64(h.node), "err", err)
	}
}

// Flush answers FLUSH, which the kernel sends on every close, with ENOSYS: writes go straight to the
// view's file, so there is never anything to write back, and after this answer the kernel sends no
// FLUSH on this mount any more (close then succeeds without asking).
func (fs *fileSystem[D]) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	return fuse.ENOSYS
}

// Fsync answers FSYNC. In a writable view it syncs the handle's file when it is open for writing (or
// can sync itself); a handle open for reading only syncs the whole upper directory, since the file may
// have been written through a handle since closed. A read-only view has nothing to sync.
func (fs *fileSystem[D]) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	if !fs.writable() {
		return fuse.OK
	}
	h, ok := fs.files.get(in.Fh)
	if !ok {
		return fuse.EBADF
	}
	var err error
	if s, ok := h.f.(interface{ Sync() error }); ok {
		err = s.Sync()
	} else {
		err = fs.wview.Sync()
	}
	if err != nil {
		return fs.status("fsync", in.NodeId, err)
	}
	return fuse.OK
}

package fs

import "github.com/hanwen/go-fuse/v2/fuse"

// The operations below would change the tree, which is read-only: they fail with EROFS. The mount is
// read-only too, so the kernel refuses most of them before they get here.

// SetAttr answers SETATTR (chmod, chown, truncate, utimes) with EROFS.
func (fs *fileSystem[D]) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	return fuse.EROFS
}

// Mknod answers MKNOD with EROFS.
func (fs *fileSystem[D]) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	return fuse.EROFS
}

// Mkdir answers MKDIR with EROFS.
func (fs *fileSystem[D]) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	return fuse.EROFS
}

// Unlink answers UNLINK with EROFS.
func (fs *fileSystem[D]) Unlink(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return fuse.EROFS
}

// Rmdir answers RMDIR with EROFS.
func (fs *fileSystem[D]) Rmdir(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return fuse.EROFS
}

// Rename answers RENAME with EROFS.
func (fs *fileSystem[D]) Rename(cancel <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	return fuse.EROFS
}

// Link answers LINK with EROFS.
func (fs *fileSystem[D]) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	return fuse.EROFS
}

// Symlink answers SYMLINK with EROFS.
func (fs *fileSystem[D]) Symlink(cancel <-chan struct{}, h *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	return fuse.EROFS
}

// SetXAttr answers SETXATTR with EROFS.
func (fs *fileSystem[D]) SetXAttr(cancel <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	return fuse.EROFS
}

// RemoveXAttr answers REMOVEXATTR with EROFS.
func (fs *fileSystem[D]) RemoveXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string) fuse.Status {
	return fuse.EROFS
}

// Create answers CREATE with EROFS.
func (fs *fileSystem[D]) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	return fuse.EROFS
}

// Tmpfile answers TMPFILE (O_TMPFILE) with EROFS.
func (fs *fileSystem[D]) Tmpfile(cancel <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	return fuse.EROFS
}

// Write answers WRITE with EROFS; no handle is ever open for writing.
func (fs *fileSystem[D]) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	return 0, fuse.EROFS
}

// Writev answers WRITE with EROFS.
func (fs *fileSystem[D]) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	return 0, fuse.EROFS
}

// Fallocate answers FALLOCATE with EROFS.
func (fs *fileSystem[D]) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	return fuse.EROFS
}

// CopyFileRange answers COPY_FILE_RANGE, whose destination would be in this file system, with EROFS.
func (fs *fileSystem[D]) CopyFileRange(cancel <-chan struct{}, in *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	return 0, fuse.EROFS
}

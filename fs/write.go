package fs

import (
	"errors"
	"math"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

// The operations below change the tree. A read-only view answers them with EROFS (the mount is read-only
// too, so the kernel refuses most of them before they get here); a writable view does them.
//
// The kernel updates its caches from each reply: an entry reply carries the new node's attributes, and
// the kernel itself invalidates the attributes of the directories and nodes that a change touches
// (parent mtime, nlink, ctime). That is why the entry and attribute timeouts can stay long.

// newEntry returns the owner and mode of a new entry that the request's caller makes in directory
// parent, as Linux file systems do: the caller's user, and the caller's group unless parent has the
// setgid bit; then the new entry gets parent's group and a new directory the setgid bit too. A writable
// mount negotiates FUSE_DONT_MASK, so the caller's umask arrives apart from mode: it applies unless
// parent has a default ACL, which then rules instead (POSIX.1e); newEntry returns that ACL for
// inheritACL.
func (fs *fileSystem[D]) newEntry(parent overlay.Node, h *fuse.InHeader, mode, umask uint32, dir bool) (overlay.Caller, uint32, []byte, error) {
	c := overlay.Caller{UID: h.Uid, GID: h.Gid}
	mode &= 07777
	p, err := fs.view.Attr(parent)
	if err != nil {
		return c, mode, nil, err
	}
	if p.Type != index.TypeDir {
		return c, mode, nil, overlay.ErrNotDir
	}
	xs, err := fs.view.Xattrs(parent)
	if err != nil {
		return c, mode, nil, err
	}
	def := defaultACL(xs)
	if def == nil {
		mode &^= umask
	}
	if p.Mode&syscall.S_ISGID != 0 {
		c.GID = p.GID
		if dir {
			mode |= syscall.S_ISGID
		}
	}
	return c, mode, def, nil
}

// entry answers a request that made a node: err, or the entry reply for a.
func (fs *fileSystem[D]) entry(op string, n uint64, out *fuse.EntryOut, a overlay.Attr, err error) fuse.Status {
	if err == nil {
		err = fs.fillEntry(out, a)
	}
	if err != nil {
		return fs.status(op, n, err)
	}
	return fuse.OK
}

// SetAttr answers SETATTR (chmod, chown, truncate, utimes). A truncation through an open handle
// (ftruncate) goes to that handle's file, which also works once the file has no name left.
func (fs *fileSystem[D]) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	if !fs.writable() {
		return fuse.EROFS
	}
	n := overlay.Node(in.NodeId)
	var sa overlay.SetAttrIn
	if m, ok := in.GetMode(); ok {
		sa.Mode = &m
	}
	if uid, ok := in.GetUID(); ok {
		sa.UID = &uid
	}
	if gid, ok := in.GetGID(); ok {
		sa.GID = &gid
	}
	if t, ok := in.GetATime(); ok {
		sa.Atime = &t
	}
	if t, ok := in.GetMTime(); ok {
		sa.Mtime = &t
	}
	var h *fileHandle
	if fh, ok := in.GetFh(); ok {
		h, _ = fs.files.get(fh)
	}
	if size, ok := in.GetSize(); ok {
		if size > math.MaxInt64 {
			return fuse.Status(syscall.EFBIG)
		}
		s := int64(size)
		if h != nil && h.w != nil {
			if err := h.w.Truncate(s); err != nil {
				return fs.status("setattr", in.NodeId, err)
			}
		} else {
			sa.Size = &s
		}
	}
	var a overlay.Attr
	var err error
	if sa == (overlay.SetAttrIn{}) {
		// Nothing for the view to change (a truncation through the handle, or only ctime or the lock
		// owner): do not copy the node up for nothing.
		a, err = fs.view.Attr(n)
	} else {
		a, err = fs.wview.SetAttr(n, sa)
	}
	if err == nil {
		err = fs.fillAttr(&out.Attr, a)
	}
	if err != nil {
		return fs.status("setattr", in.NodeId, err)
	}
	out.SetTimeout(fs.attrTimeout)
	return fuse.OK
}

// Mknod answers MKNOD: FIFOs, devices and sockets (bind(2) of a UNIX socket makes one with MKNOD), and
// regular files (mknod(2) with S_IFREG, which open(2) with O_CREAT does not use). An unknown type is
// EPERM, as mknod(2) documents for a type the file system does not support.
func (fs *fileSystem[D]) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	if !fs.writable() {
		return fuse.EROFS
	}
	parent := overlay.Node(in.NodeId)
	typ := index.TypeOfMode(in.Mode)
	if in.Mode&syscall.S_IFMT == 0 {
		typ = index.TypeRegular // mknod(2): a zero type is a regular file
	}
	switch typ {
	case index.TypeRegular, index.TypeFIFO, index.TypeChar, index.TypeBlock, index.TypeSocket:
	default:
		return fuse.EPERM
	}
	c, mode, def, err := fs.newEntry(parent, &in.InHeader, in.Mode, in.Umask, false)
	if err != nil {
		return fs.status("mknod", in.NodeId, err)
	}
	var a overlay.Attr
	if typ == index.TypeRegular {
		var f overlay.WFile
		if a, f, err = fs.wview.Create(parent, name, mode, c); err == nil {
			if cerr := f.Close(); cerr != nil {
				fs.log.Debug("mknod: closing the new file", "node", uint64(a.Node), "err", cerr)
			}
		}
	} else {
		dev := uint64(in.Rdev)
		a, err = fs.wview.Mknod(parent, name, typ, mode, unix.Major(dev), unix.Minor(dev), c)
	}
	if err == nil {
		a, err = fs.inheritACL(a, def)
	}
	return fs.entry("mknod", in.NodeId, out, a, err)
}

// Mkdir answers MKDIR.
func (fs *fileSystem[D]) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	if !fs.writable() {
		return fuse.EROFS
	}
	parent := overlay.Node(in.NodeId)
	c, mode, def, err := fs.newEntry(parent, &in.InHeader, in.Mode, in.Umask, true)
	var a overlay.Attr
	if err == nil {
		a, err = fs.wview.Mkdir(parent, name, mode, c)
	}
	if err == nil {
		a, err = fs.inheritACL(a, def)
	}
	return fs.entry("mkdir", in.NodeId, out, a, err)
}

// Unlink answers UNLINK.
func (fs *fileSystem[D]) Unlink(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	if !fs.writable() {
		return fuse.EROFS
	}
	if err := fs.wview.Unlink(overlay.Node(h.NodeId), name); err != nil {
		return fs.status("unlink", h.NodeId, err)
	}
	return fuse.OK
}

// Rmdir answers RMDIR.
func (fs *fileSystem[D]) Rmdir(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	if !fs.writable() {
		return fuse.EROFS
	}
	if err := fs.wview.Rmdir(overlay.Node(h.NodeId), name); err != nil {
		return fs.status("rmdir", h.NodeId, err)
	}
	return fuse.OK
}

// Rename answers RENAME and RENAME2 with RENAME_NOREPLACE or RENAME_EXCHANGE. RENAME_WHITEOUT (which
// overlayfs uses on its upper layer) and unknown flags fail with EINVAL.
func (fs *fileSystem[D]) Rename(cancel <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	if !fs.writable() {
		return fuse.EROFS
	}
	var flags overlay.RenameFlags
	switch in.Flags {
	case 0:
	case unix.RENAME_NOREPLACE:
		flags = overlay.RenameNoReplace
	case unix.RENAME_EXCHANGE:
		flags = overlay.RenameExchange
	default:
		return fuse.EINVAL
	}
	if err := fs.wview.Rename(overlay.Node(in.NodeId), oldName, overlay.Node(in.Newdir), newName, flags); err != nil {
		return fs.status("rename", in.NodeId, err)
	}
	return fuse.OK
}

// Link answers LINK.
func (fs *fileSystem[D]) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	if !fs.writable() {
		return fuse.EROFS
	}
	a, err := fs.wview.Link(overlay.Node(in.Oldnodeid), overlay.Node(in.NodeId), name)
	return fs.entry("link", in.NodeId, out, a, err)
}

// Symlink answers SYMLINK.
func (fs *fileSystem[D]) Symlink(cancel <-chan struct{}, h *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	if !fs.writable() {
		return fuse.EROFS
	}
	parent := overlay.Node(h.NodeId)
	c, _, _, err := fs.newEntry(parent, h, 0o777, 0, false)
	var a overlay.Attr
	if err == nil {
		a, err = fs.wview.Symlink(parent, name, target, c)
	}
	return fs.entry("symlink", h.NodeId, out, a, err)
}

// SetXAttr answers SETXATTR. A missing attribute (XATTR_REPLACE) is ENODATA, not ENOENT.
func (fs *fileSystem[D]) SetXAttr(cancel <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	if !fs.writable() {
		return fuse.EROFS
	}
	return fs.xattrStatus("setxattr", in.NodeId, fs.wview.SetXattr(overlay.Node(in.NodeId), attr, data, int(in.Flags)))
}

// RemoveXAttr answers REMOVEXATTR. A missing attribute is ENODATA.
func (fs *fileSystem[D]) RemoveXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string) fuse.Status {
	if !fs.writable() {
		return fuse.EROFS
	}
	return fs.xattrStatus("removexattr", h.NodeId, fs.wview.RemoveXattr(overlay.Node(h.NodeId), attr))
}

func (fs *fileSystem[D]) xattrStatus(op string, n uint64, err error) fuse.Status {
	if err == nil {
		return fuse.OK
	}
	if _, ok := errors.AsType[syscall.Errno](err); !ok && errors.Is(err, overlay.ErrNotExist) {
		return fuse.ENODATA
	}
	return fs.status(op, n, err)
}

// Create answers CREATE (open with O_CREAT of a name that does not exist): the new file is opened
// as the flags say.
func (fs *fileSystem[D]) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	if !fs.writable() {
		return fuse.EROFS
	}
	parent := overlay.Node(in.NodeId)
	c, mode, def, err := fs.newEntry(parent, &in.InHeader, in.Mode, in.Umask, false)
	if err != nil {
		return fs.status("create", in.NodeId, err)
	}
	a, f, err := fs.wview.Create(parent, name, mode, c)
	if err == nil {
		if a, err = fs.inheritACL(a, def); err != nil {
			_ = f.Close()
		}
	}
	if err != nil {
		return fs.status("create", in.NodeId, err)
	}
	if err := fs.fillEntry(&out.EntryOut, a); err != nil {
		_ = f.Close()
		return fs.status("create", in.NodeId, err)
	}
	h := &fileHandle{f: f, node: a.Node, live: true}
	if in.Flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		h.w = f
	}
	out.Fh = fs.files.add(h)
	return fuse.OK
}

// Tmpfile answers TMPFILE (O_TMPFILE): EROFS for a read-only view, EOPNOTSUPP for a writable one, as
// file systems without unnamed files answer.
func (fs *fileSystem[D]) Tmpfile(cancel <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	if !fs.writable() {
		return fuse.EROFS
	}
	return fuse.Status(syscall.EOPNOTSUPP)
}

// Fallocate answers FALLOCATE: EROFS for a read-only view, EOPNOTSUPP for a writable one (the view's
// files have no way to reserve space; posix_fallocate(3) then writes zeros itself).
func (fs *fileSystem[D]) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	if !fs.writable() {
		return fuse.EROFS
	}
	return fuse.Status(syscall.EOPNOTSUPP)
}

// CopyFileRange answers COPY_FILE_RANGE: EROFS for a read-only view (the destination would be in it);
// ENOSYS for a writable one, on which the kernel copies through READ and WRITE itself.
func (fs *fileSystem[D]) CopyFileRange(cancel <-chan struct{}, in *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	if !fs.writable() {
		return 0, fuse.EROFS
	}
	return 0, fuse.ENOSYS
}

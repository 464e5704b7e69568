package fs

import (
	"errors"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/imgfs/imgfs/overlay"
)

// Lookup answers LOOKUP. A name that does not exist is answered with node ID 0 and the entry timeout,
// which the kernel caches as a negative entry and reports as ENOENT: a read-only tree never changes, and
// a writable one changes only through the mount, where the kernel replaces the negative entry when the
// name is made, so the absence of a name is as stable as its presence.
func (fs *fileSystem[D]) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	a, err := fs.view.Lookup(overlay.Node(h.NodeId), name)
	if errors.Is(err, overlay.ErrNotExist) {
		*out = fuse.EntryOut{}
		out.SetEntryTimeout(fs.entryTimeout)
		return fuse.OK
	}
	if err != nil {
		return fs.status("lookup", h.NodeId, err)
	}
	if err := fs.fillEntry(out, a); err != nil {
		return fs.status("lookup", h.NodeId, err)
	}
	return fuse.OK
}

// Forget does nothing: nodes carry no state, so there is nothing to release when the kernel drops one.
func (fs *fileSystem[D]) Forget(nodeID, nlookup uint64) {}

// GetAttr answers GETATTR. A directory of a writable view that was removed while open (fstat on its
// descriptor) no longer has attributes in the view: it shows those it had when opened, with no link.
func (fs *fileSystem[D]) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	a, err := fs.view.Attr(overlay.Node(in.NodeId))
	if err != nil && fs.writable() && errors.Is(err, overlay.ErrNotExist) {
		if h, ok := fs.dirs.find(func(h *dirHandle[D]) bool { return h.node == overlay.Node(in.NodeId) }); ok {
			a, err = h.attr, nil
			a.Nlink = 0
		}
	}
	if err == nil {
		err = fs.fillAttr(&out.Attr, a)
	}
	if err != nil {
		return fs.status("getattr", in.NodeId, err)
	}
	out.SetTimeout(fs.attrTimeout)
	return fuse.OK
}

// Readlink answers READLINK.
func (fs *fileSystem[D]) Readlink(cancel <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	target, err := fs.view.Readlink(overlay.Node(h.NodeId))
	if err != nil {
		return nil, fs.status("readlink", h.NodeId, err)
	}
	return []byte(target), fuse.OK
}

// Access answers ACCESS, which the kernel sends only without default_permissions (Mount always sets
// it, so the kernel checks modes itself): writing to a read-only view is refused, anything else is
// allowed.
func (fs *fileSystem[D]) Access(cancel <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	if in.Mask&unix.W_OK != 0 && !fs.writable() {
		return fuse.EROFS
	}
	if _, err := fs.view.Attr(overlay.Node(in.NodeId)); err != nil {
		return fs.status("access", in.NodeId, err)
	}
	return fuse.OK
}

// StatFs answers STATFS. A writable view with Options.UpperDir reports the blocks and inodes of the file
// system holding the upper directory, which is where new data goes. Otherwise it reports the size of
// the regular files as used blocks when the view reports its usage (UsageReporter), nothing free. Names
// are up to 255 bytes.
func (fs *fileSystem[D]) StatFs(cancel <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	*out = fuse.StatfsOut{Bsize: blockSize, Frsize: blockSize, NameLen: 255}
	if fs.writable() && fs.upperDir != "" {
		var st unix.Statfs_t
		if err := unix.Statfs(fs.upperDir, &st); err != nil {
			return fs.status("statfs", h.NodeId, err)
		}
		out.Blocks, out.Bfree, out.Bavail = st.Blocks, st.Bfree, st.Bavail
		out.Files, out.Ffree = st.Files, st.Ffree
		out.Bsize, out.Frsize = uint32(st.Bsize), uint32(st.Frsize)
		out.NameLen = uint32(min(st.Namelen, 255))
		return fuse.OK
	}
	if u, ok := fs.view.(UsageReporter); ok {
		bytes, files := u.Usage()
		out.Blocks = uint64(max(bytes, 0)+blockSize-1) / blockSize
		out.Files = uint64(max(files, 0))
	}
	return fuse.OK
}

// selinuxXattr holds a file's SELinux label.
const selinuxXattr = "security.selinux"

// GetXAttr answers GETXATTR. With an empty buffer it returns the size of the value; with a buffer too
// small, ERANGE; a name the node does not list is asked of the view's UnlistedXattrs, else ENODATA.
//
// A read-only view without extended attributes (noXattrs) answers ENOSYS: the kernel then answers
// every getxattr itself, EOPNOTSUPP, and sends no GETXATTR on this mount any more. One without
// security.selinux anywhere (noLabels) answers EOPNOTSUPP for that name: ls -l asks it of every entry
// and stops at the first EOPNOTSUPP of a file system.
func (fs *fileSystem[D]) GetXAttr(cancel <-chan struct{}, h *fuse.InHeader, name string, dest []byte) (uint32, fuse.Status) {
	if fs.noXattrs {
		return 0, fuse.ENOSYS
	}
	if fs.noLabels && name == selinuxXattr {
		return 0, fuse.Status(unix.EOPNOTSUPP)
	}
	xs, err := fs.view.Xattrs(overlay.Node(h.NodeId))
	if err != nil {
		return 0, fs.status("getxattr", h.NodeId, err)
	}
	xs = servedXattrs(fs.log, h.NodeId, xs)
	for _, x := range xs {
		if x.Name != name {
			continue
		}
		n := uint32(len(x.Value))
		if len(dest) == 0 {
			return n, fuse.OK
		}
		if len(dest) < len(x.Value) {
			return n, fuse.ERANGE
		}
		return uint32(copy(dest, x.Value)), fuse.OK
	}
	return fs.unlistedXattr(h.NodeId, name, dest)
}

// ListXAttr answers LISTXATTR with the names, each followed by a NUL byte, under the same size
// protocol as GetXAttr.
func (fs *fileSystem[D]) ListXAttr(cancel <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	xs, err := fs.view.Xattrs(overlay.Node(h.NodeId))
	if err != nil {
		return 0, fs.status("listxattr", h.NodeId, err)
	}
	xs = servedXattrs(fs.log, h.NodeId, xs)
	size := 0
	for _, x := range xs {
		size += len(x.Name) + 1
	}
	if len(dest) == 0 {
		return uint32(size), fuse.OK
	}
	if len(dest) < size {
		return uint32(size), fuse.ERANGE
	}
	dest = dest[:0]
	for _, x := range xs {
		dest = append(dest, x.Name...)
		dest = append(dest, 0)
	}
	return uint32(size), fuse.OK
}

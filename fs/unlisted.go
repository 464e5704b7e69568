package fs

import (
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/imgfs/imgfs/overlay"
)

// UnlistedXattrs is an optional ability of a View: extended attributes that getxattr(2) answers but
// listxattr(2) does not list (imgfs's provenance attributes, see package layertree), so that cp -a,
// tar --xattrs and rsync -X never copy them. GETXATTR asks for them only when Xattrs has no attribute
// of that name.
type UnlistedXattrs interface {
	// UnlistedXattr returns the value of attribute name of node n; ok is false when there is none.
	UnlistedXattr(n overlay.Node, name string) (value []byte, ok bool, err error)
}

// unlistedXattr answers a GETXATTR that no listed attribute answered: from the view's UnlistedXattrs
// when it has them, else ENODATA.
func (fs *fileSystem[D]) unlistedXattr(node uint64, name string, dest []byte) (uint32, fuse.Status) {
	u, ok := fs.view.(UnlistedXattrs)
	if !ok {
		return 0, fuse.Status(syscall.ENODATA)
	}
	v, ok, err := u.UnlistedXattr(overlay.Node(node), name)
	if err != nil {
		return 0, fs.status("getxattr", node, err)
	}
	if !ok {
		return 0, fuse.Status(syscall.ENODATA)
	}
	n := uint32(len(v))
	if len(dest) == 0 {
		return n, fuse.OK
	}
	if len(dest) < len(v) {
		return n, fuse.ERANGE
	}
	return uint32(copy(dest, v)), fuse.OK
}

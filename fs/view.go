package fs

import (
	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

// View is the read-only tree that a file system serves: the method set of *overlay.View. D is the type
// of its directory snapshots (*overlay.Dir); Go infers it from the view, so callers write
// fs.Mount(dir, view, opts).
//
// Every method must be safe for concurrent use. Nodes are stable: the same node always has the same
// attributes, and a node returned once stays valid for the life of the view, because the kernel may ask
// about it at any time without looking it up again.
type View[D Dir] interface {
	// Attr returns the attributes of node n.
	Attr(n overlay.Node) (overlay.Attr, error)
	// Lookup returns the attributes of the entry called name in directory parent. It fails with an
	// error matching overlay.ErrNotExist when there is none.
	Lookup(parent overlay.Node, name string) (overlay.Attr, error)
	// ReadDir returns a snapshot of the entries of directory n, sorted by name, without "." and "..".
	ReadDir(n overlay.Node) (D, error)
	// Readlink returns the target of symbolic link n.
	Readlink(n overlay.Node) (string, error)
	// Xattrs returns the extended attributes of node n.
	Xattrs(n overlay.Node) ([]index.Xattr, error)
	// Open returns the data of regular file n.
	Open(n overlay.Node) (overlay.File, error)
}

// Dir is a snapshot of a directory's entries. Entry is called with 0 <= i < Len, possibly from several
// goroutines at once.
type Dir interface {
	Len() int
	Entry(i int) overlay.DirEntry
}

// UsageReporter is an optional ability of a View: a view that has it tells StatFs how many bytes of
// regular-file data and how many nodes it holds. Without it StatFs reports zero blocks and files.
type UsageReporter interface {
	Usage() (bytes, files int64)
}

// XattrReporter is an optional ability of a View: HasXattrs reports whether any node may have an
// extended attribute, HasXattr whether any may have the one called name. A read-only view without any
// is served without GETXATTR: the kernel answers every getxattr(2) itself with EOPNOTSUPP, as on a
// file system without extended attributes, so that ls -l, permission checks and exec ask nothing per
// file; listxattr(2) still lists none. A read-only view without security.selinux answers EOPNOTSUPP
// for that name (the mount has no SELinux labels), which ls -l takes as "none on this file system"
// and stops asking.
type XattrReporter interface {
	HasXattrs() bool
	HasXattr(name string) bool
}

// DirCopyUpNotifier is an optional ability of a WritableView: it tells fn of every directory whose
// attributes a change elsewhere changed (a lower directory copied up, whose link count becomes 1), so
// that the kernel's cache of them can be dropped.
type DirCopyUpNotifier interface {
	OnDirCopyUp(fn func(n overlay.Node))
}

// WritableView is the optional ability of a View to change: the methods of *overlay.View over an upper
// directory. A view that has it and whose Writable reports true is served read-write; any other view is
// served read-only and every change fails with EROFS.
//
// Every method must be safe for concurrent use. Errors are matched with errors.Is and errors.As (see
// Errno): a syscall.Errno wrapped in the error reaches the caller as it is.
//
// The kernel caches entries and attributes for Options.EntryTimeout and AttrTimeout and learns of every
// change from the replies to the requests that make it, so the view must change only through these
// methods, and a node must keep naming the same file across copy-up and renames, as long as the mount
// lives; a node ID must never be reused for another file.
//
// The Caller of the methods that make entries is the request's user and group, with the group of a
// setgid parent directory already applied (and the setgid bit of a new directory in its mode); mode
// holds the permission bits with the caller's umask applied.
type WritableView interface {
	// Writable reports whether the view accepts changes.
	Writable() bool
	// Create makes a new regular file called name in directory parent, owned by c, and opens it for
	// reading and writing. It fails with an error matching overlay.ErrExist when the name exists.
	Create(parent overlay.Node, name string, mode uint32, c overlay.Caller) (overlay.Attr, overlay.WFile, error)
	// Mkdir makes a new directory.
	Mkdir(parent overlay.Node, name string, mode uint32, c overlay.Caller) (overlay.Attr, error)
	// Mknod makes a FIFO or a device of type typ (index.TypeFIFO, TypeChar or TypeBlock).
	Mknod(parent overlay.Node, name string, typ index.Type, mode uint32, major, minor uint32, c overlay.Caller) (overlay.Attr, error)
	// Symlink makes a symbolic link to target.
	Symlink(parent overlay.Node, name, target string, c overlay.Caller) (overlay.Attr, error)
	// Link gives node target the new name newName in directory newParent.
	Link(target, newParent overlay.Node, newName string) (overlay.Attr, error)
	// Unlink removes the name of a non-directory.
	Unlink(parent overlay.Node, name string) error
	// Rmdir removes an empty directory.
	Rmdir(parent overlay.Node, name string) error
	// Rename moves oldName of oldParent to newName of newParent, replacing what newName named unless
	// flags say otherwise.
	Rename(oldParent overlay.Node, oldName string, newParent overlay.Node, newName string, flags overlay.RenameFlags) error
	// SetAttr changes the attributes that in sets and returns the node's new attributes.
	SetAttr(n overlay.Node, in overlay.SetAttrIn) (overlay.Attr, error)
	// SetXattr sets extended attribute name. flags are setxattr(2)'s: with XATTR_CREATE it fails with
	// an error matching overlay.ErrExist when the attribute exists, with XATTR_REPLACE with one matching
	// overlay.ErrNotExist when it does not. value is valid only during the call.
	SetXattr(n overlay.Node, name string, value []byte, flags int) error
	// RemoveXattr removes extended attribute name; overlay.ErrNotExist when there is none.
	RemoveXattr(n overlay.Node, name string) error
	// OpenFile opens regular file n, for writing when write is set (the view copies it to its upper
	// directory first), truncating it to 0 bytes when trunc is set.
	OpenFile(n overlay.Node, write, trunc bool) (overlay.WFile, error)
	// Sync flushes every change to stable storage.
	Sync() error
}

// The overlay package's view is what Mount serves in imgfs, read-write when it has an upper directory.
var (
	_ View[*overlay.Dir] = (*overlay.View)(nil)
	_ WritableView       = (*overlay.View)(nil)
	_ DirCopyUpNotifier  = (*overlay.View)(nil)
	_ XattrReporter      = (*overlay.View)(nil)
)

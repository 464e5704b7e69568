package overlay

import (
	"errors"
	iofs "io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/imgfs/imgfs/index"
)

// Errors of a writable view. Errors from the upper directory's own system calls are returned wrapped as
// they come (an *os.PathError holding a syscall.Errno such as ENOSPC or EACCES); the view never invents
// an Errno: it returns these sentinels.
var (
	// ErrExist means that the name to create already exists in the merged view (or an extended
	// attribute exists when XATTR_CREATE was asked).
	ErrExist = iofs.ErrExist
	// ErrNotEmpty means that a directory to remove or to replace has children in the merged view.
	ErrNotEmpty = errors.New("overlay: directory not empty")
	// ErrReadOnly means a change asked of a view without an upper directory, or a write to a file opened
	// read-only.
	ErrReadOnly = errors.New("overlay: read-only view")
	// ErrReservedName means a name the upper directory's format reserves: a file name starting with
	// ".wh." (whiteouts), or an extended attribute of overlayfs (trusted.overlay.*, user.overlay.*) or
	// imgfs's record of the base (trusted.imgfs.base, user.imgfs.base); other user.imgfs.* names are
	// ordinary content.
	ErrReservedName = errors.New("overlay: reserved name")
	// ErrCrossDevice means that the upper directory refused to move an entry across file systems (a
	// mount point inside it). Renaming lower directories does not fail with it: they are copied up.
	ErrCrossDevice = errors.New("overlay: cross-device link")
	// ErrNotUpper means that a directory opened read-only as an upper directory carries no base record:
	// no writable mount made it.
	ErrNotUpper = errors.New("overlay: not an upper directory")
)

// Caller is the owner of new entries: the user and group of the process that asked for them. In a
// directory with the setgid bit the group is the directory's, as on Linux.
type Caller struct{ UID, GID uint32 }

// RenameFlags modify Rename, like renameat2's flags.
type RenameFlags uint32

// Rename flags.
const (
	// RenameNoReplace fails with ErrExist when the new name exists.
	RenameNoReplace RenameFlags = 1 << iota
	// RenameExchange swaps the two names, which must both exist.
	RenameExchange
)

// SetAttrIn says which attributes SetAttr changes; nil fields stay as they are.
type SetAttrIn struct {
	Mode         *uint32 // permission, setuid, setgid and sticky bits (07777)
	UID, GID     *uint32
	Size         *int64 // regular files: truncate or extend
	Atime, Mtime *time.Time
}

// WFile is a regular file opened through a writable view. Files opened for writing are in the upper
// directory (copied up first when they were lower); a WFile opened read-only on a lower file reads the
// upper copy once another open has copied it up.
type WFile interface {
	File // FileRange reports ok=false once the file is in the upper directory
	// WriteAt writes at offset off; ErrReadOnly when the file was opened read-only.
	WriteAt(p []byte, off int64) (int, error)
	// Truncate changes the size; ErrReadOnly when the file was opened read-only.
	Truncate(size int64) error
	// Sync flushes the file's data and metadata to stable storage.
	Sync() error
	// Close releases the file.
	Close() error
}

// UpperOptions configure OpenUpper.
type UpperOptions struct {
	// Dir is the upper directory, in the kernel overlayfs format, so that the same directory also
	// works as upperdir of "mount -t overlay" over the extracted layers. It is created (0755) when
	// missing. Entries are made in a work directory, DIR's sibling .NAME.imgfs-work (DIR/.wh..wh.imgfs-work
	// when the sibling cannot be on DIR's mount), and renamed into place: a crash leaves nothing in
	// DIR. OpenUpper empties the work directory (what a killed mount left); Close removes it.
	Dir string
	// ReadOnly opens an existing upper directory without writing anything into it: no directory is
	// created, no base recorded, nothing probed. The directory must carry the base record of Base
	// (ErrNotUpper otherwise), and the view over it refuses every change with ErrReadOnly. diff,
	// commit and export use it; only a writable mount writes into an upper directory.
	ReadOnly bool
	// Base identifies the image below (the chain of its layers' diff IDs, as a string). It is recorded
	// in Dir on first use as the xattr trusted.imgfs.base (user.imgfs.base when the process may not set
	// trusted.* xattrs); a Dir recorded for another Base is refused with an error naming both.
	Base string
	// Logger receives notes about metadata that could not be copied up; nil discards them.
	Logger *slog.Logger

	markers upperMarkers // tests: the form of the markers; zero: what the process may write
}

// Upper is an open upper directory, ready to be given to New in Options.Upper.
//
// Whiteouts are character devices 0/0 (which Linux lets anyone make since 5.8). Opaque directories
// carry trusted.overlay.opaque="y" as root, and user.overlay.opaque="y" (the userxattr form) when the
// process may not set trusted.* xattrs; a directory keeps the form it was first used with. Where
// mknod of a whiteout is refused, a whiteout is an empty regular file with overlay.whiteout, in a
// directory marked with overlay.opaque="x" and overlay.whiteouts; note that overlayfs (as of Linux
// 6.18) hides such whiteouts of an upper directory from lookups but still lists them. Every form is
// read.
type Upper struct {
	sys   *upperFS
	base  string
	log   *slog.Logger
	fresh bool // the directory was empty and had no base recorded: the root takes the lower root's metadata

	mu    sync.Mutex
	bound bool
}

// Close closes the upper directory. The view that uses it must not be used afterwards.
func (u *Upper) Close() error {
	if u == nil || u.sys == nil {
		return nil
	}
	return u.sys.close()
}

// Writable reports whether the view has an upper directory opened for writing.
func (v *View) Writable() bool { return v.up != nil && !v.up.fs.ro }

// Create makes a new regular file called name in directory parent (failing with ErrExist when the name
// exists), owned by c, with permission bits mode (07777), and returns it opened for reading and writing.
func (v *View) Create(parent Node, name string, mode uint32, c Caller) (Attr, WFile, error) {
	if !v.Writable() {
		return Attr{}, nil, ErrReadOnly
	}
	return v.up.create(parent, name, mode, c)
}

// Mkdir makes a new directory called name in directory parent, owned by c, with permission bits mode.
func (v *View) Mkdir(parent Node, name string, mode uint32, c Caller) (Attr, error) {
	if !v.Writable() {
		return Attr{}, ErrReadOnly
	}
	return v.up.mkdir(parent, name, mode, c)
}

// Mknod makes a FIFO (typ index.TypeFIFO) or, when the process may, a character or block device called
// name in directory parent. A character device 0/0 is refused with ErrInvalid: it is a whiteout.
func (v *View) Mknod(parent Node, name string, typ index.Type, mode uint32, major, minor uint32, c Caller) (Attr, error) {
	if !v.Writable() {
		return Attr{}, ErrReadOnly
	}
	return v.up.mknod(parent, name, typ, mode, major, minor, c)
}

// Symlink makes a symbolic link called name to target (kept verbatim, never followed) in directory
// parent.
func (v *View) Symlink(parent Node, name, target string, c Caller) (Attr, error) {
	if !v.Writable() {
		return Attr{}, ErrReadOnly
	}
	return v.up.symlink(parent, name, target, c)
}

// Link gives non-directory target the new name newName in directory newParent. A lower file is copied
// up first (under all its names); every name keeps showing the target's node.
func (v *View) Link(target Node, newParent Node, newName string) (Attr, error) {
	if !v.Writable() {
		return Attr{}, ErrReadOnly
	}
	return v.up.link(target, newParent, newName)
}

// Unlink removes the non-directory called name from directory parent; a name of the layers is hidden
// by a whiteout.
func (v *View) Unlink(parent Node, name string) error {
	if !v.Writable() {
		return ErrReadOnly
	}
	return v.up.unlink(parent, name)
}

// Rmdir removes the empty directory called name from directory parent; ErrNotEmpty when the merged
// directory has children.
func (v *View) Rmdir(parent Node, name string) error {
	if !v.Writable() {
		return ErrReadOnly
	}
	return v.up.rmdir(parent, name)
}

// Rename moves oldName of oldParent to newName of newParent, as rename(2) and renameat2(2) with flags.
// Files and whole directories move, also those of the layers (a lower directory is copied up with
// everything below it, where kernel overlayfs would fail with EXDEV); every moved node keeps its ID.
func (v *View) Rename(oldParent Node, oldName string, newParent Node, newName string, flags RenameFlags) error {
	if !v.Writable() {
		return ErrReadOnly
	}
	return v.up.rename(oldParent, oldName, newParent, newName, flags)
}

// SetAttr changes the attributes of node n that in names, copying n up first, and returns the new
// attributes.
func (v *View) SetAttr(n Node, in SetAttrIn) (Attr, error) {
	if !v.Writable() {
		return Attr{}, ErrReadOnly
	}
	return v.up.setAttr(n, in)
}

// SetXattr sets extended attribute name of node n, copying n up first. flags are setxattr(2)'s:
// XATTR_CREATE fails with ErrExist when the attribute exists, XATTR_REPLACE with ErrNotExist when it
// does not. Marker names fail with ErrReservedName.
func (v *View) SetXattr(n Node, name string, value []byte, flags int) error {
	if !v.Writable() {
		return ErrReadOnly
	}
	return v.up.setXattr(n, name, value, flags)
}

// RemoveXattr removes extended attribute name of node n, copying n up first; ErrNotExist when it has
// none of that name.
func (v *View) RemoveXattr(n Node, name string) error {
	if !v.Writable() {
		return ErrReadOnly
	}
	return v.up.removeXattr(n, name)
}

// OpenFile opens regular file n. With write (or trunc) a lower file is copied up first, exactly once
// however many opens race, and the WFile writes to the upper copy; trunc empties it. Without either it
// behaves as Open.
func (v *View) OpenFile(n Node, write, trunc bool) (WFile, error) {
	if v.up != nil && !v.Writable() && (write || trunc) {
		return nil, ErrReadOnly
	}
	if v.up == nil {
		if write || trunc {
			return nil, ErrReadOnly
		}
		f, err := v.lowerOpen(n)
		if err != nil {
			return nil, err
		}
		return roFile{f}, nil
	}
	return v.up.openFile(n, write, trunc)
}

// Freeze blocks new changes (including writes through open files) and waits for the running ones;
// thaw lets them go on. Reads go on meanwhile.
func (v *View) Freeze() (thaw func()) {
	if v.up == nil {
		return func() {}
	}
	return v.up.freeze()
}

// Sync flushes everything written to the upper directory to stable storage (syncfs).
func (v *View) Sync() error {
	if v.up == nil {
		return nil
	}
	return v.up.sync()
}

// roFile is a read-only File of a read-only view, as a WFile.
type roFile struct{ File }

func (roFile) WriteAt([]byte, int64) (int, error) { return 0, ErrReadOnly }
func (roFile) Truncate(int64) error               { return ErrReadOnly }
func (roFile) Sync() error                        { return nil }
func (roFile) Close() error                       { return nil }

// Package ovlfmt is the one reader of the whiteout formats imgfs meets: the marker names of OCI layer
// members and of kernel overlayfs upper directories, and the rules that say what an upper-directory
// entry is from its stat and extended attributes (read through /proc/self/fd).
package ovlfmt

import (
	"errors"
	"fmt"
	"strings"
)

// Names of OCI layer members (and of upper-directory entries, where the same names are skipped).
const (
	// WhiteoutPrefix starts an OCI whiteout, ".wh.NAME"; no name starting with it is ever shown.
	WhiteoutPrefix = ".wh."
	// MetaPrefix starts AUFS metadata (".wh..wh.plnk") and the temporaries of a writable view.
	MetaPrefix = ".wh..wh."
	// OpaqueMarker in a layer directory hides the lower directory's children.
	OpaqueMarker = ".wh..wh..opq"
)

// Extended attributes of an overlayfs upper directory, without their namespace: the kernel uses
// "trusted." and, mounted with userxattr, "user.".
const (
	// Opaque on a directory: "y" hides the lower directory; "x" says the directory may hold xattr
	// whiteouts (Linux 6.8 and later; overlayfs.rst, "whiteouts and opaque directories").
	Opaque = "overlay.opaque"
	// Whiteout on an empty regular file makes it a whiteout, in a directory marked for them.
	Whiteout = "overlay.whiteout"
	// Whiteouts on a directory is the marker for xattr whiteouts that Linux 6.7 development kernels
	// used before opaque="x"; it is read as opaque="x" is, and imgfs writes both.
	Whiteouts = "overlay.whiteouts"
	// Redirect on a directory: the kernel's redirect_dir moved it, and its lower content lies at another
	// path. Refused.
	Redirect = "overlay.redirect"
	// Metacopy on a regular file: the kernel's metacopy copied up only its metadata, its data is still
	// in the lower layer. Refused.
	Metacopy = "overlay.metacopy"
	// Base on the root of an upper directory records the image it was made over (imgfs's own).
	Base = "imgfs.base"
)

// Namespaces are the xattr namespaces the markers are read in, in this order.
var Namespaces = [...]string{"trusted.", "user."}

// Hidden reports whether extended attribute name is a marker, never image content: overlayfs's own
// (trusted.overlay.*, user.overlay.*) or imgfs's record of the base. Other names, user.imgfs.* included,
// are ordinary content.
func Hidden(name string) bool {
	for _, ns := range Namespaces {
		if strings.HasPrefix(name, ns+"overlay.") || name == ns+Base {
			return true
		}
	}
	return false
}

// Getxattr reads one extended attribute of an entry; ok is false when the entry has none of that name
// (or its file system has no xattrs at all).
type Getxattr func(name string) (value []byte, ok bool, err error)

// ErrRedirect and ErrMetacopy are the refusals of the kernel features whose upper directories imgfs
// cannot read; both wrap errors.ErrUnsupported.
var (
	ErrRedirect = fmt.Errorf("directory renamed by overlayfs redirect_dir (its content lies at another lower path): %w", errors.ErrUnsupported)
	ErrMetacopy = fmt.Errorf("data left in the lower layer by overlayfs metacopy: %w", errors.ErrUnsupported)
)

// DirMarks are what the markers of an upper directory say.
type DirMarks struct {
	// Opaque: opaque="y" in either namespace; the lower directory is hidden.
	Opaque bool
	// XattrWhiteouts: opaque="x" or the whiteouts marker in either namespace; empty files of the
	// directory with the whiteout xattr are whiteouts. Without it they are plain files, as the kernel
	// reads them.
	XattrWhiteouts bool
}

// ReadDirMarks reads the markers of an upper directory with get, and refuses a directory moved by
// redirect_dir with an error wrapping ErrRedirect.
func ReadDirMarks(get Getxattr) (DirMarks, error) {
	var m DirMarks
	for _, ns := range Namespaces {
		v, ok, err := get(ns + Opaque)
		if err != nil {
			return m, err
		}
		if ok && string(v) == "y" {
			m.Opaque = true
		}
		if ok && string(v) == "x" {
			m.XattrWhiteouts = true
		}
		if _, ok, err = get(ns + Whiteouts); err != nil {
			return m, err
		} else if ok {
			m.XattrWhiteouts = true
		}
		if _, ok, err = get(ns + Redirect); err != nil {
			return m, err
		} else if ok {
			return m, ErrRedirect
		}
	}
	return m, nil
}

// IsWhiteoutDevice reports whether a character device of numbers rdev is a whiteout: 0/0.
func IsWhiteoutDevice(rdev uint64) bool { return rdev == 0 }

// IsXattrWhiteout reports whether a regular file of size bytes, in a directory whose marks say
// xattrWhiteouts, is a whiteout: empty and carrying the whiteout xattr in either namespace. Outside a
// marked directory it is a plain empty file, as the kernel reads it.
func IsXattrWhiteout(size int64, xattrWhiteouts bool, get Getxattr) (bool, error) {
	if size != 0 || !xattrWhiteouts {
		return false, nil
	}
	for _, ns := range Namespaces {
		_, ok, err := get(ns + Whiteout)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

// CheckFile refuses a regular file whose data the kernel's metacopy left in the lower layer (it carries
// the metacopy xattr), with an error wrapping ErrMetacopy. It is asked wherever a file's data is read
// (the view's open, the commit's copy); the change set, which reads no data, lists such a file.
func CheckFile(get Getxattr) error {
	for _, ns := range Namespaces {
		_, ok, err := get(ns + Metacopy)
		if err != nil {
			return err
		}
		if ok {
			return ErrMetacopy
		}
	}
	return nil
}

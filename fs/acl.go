package fs

import (
	"encoding/binary"
	"fmt"
	"log/slog"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/posixacl"
	"github.com/imgfs/imgfs/overlay"
)

// POSIX ACLs. The mount negotiates FUSE_POSIX_ACL, so the kernel enforces the ACLs it reads with
// GETXATTR of system.posix_acl_access, in its xattr format: a header of version 2, then entries of tag
// (u16), permissions (u16) and id (u32), little endian. Setting one (setfacl) arrives as SETXATTR and
// is stored as it is in the upper directory, whose file system keeps the mode bits in step (as it
// does on chmod); default ACLs are stored and listed the same way. The values are served as the layers and the upper directory hold them;
// one that the kernel would refuse (EINVAL on every access to the file) is hidden instead, so that the
// file's mode bits rule, as they do on a tree extracted by a tool that could not set the ACL.
// The format and the rule for a valid ACL are package posixacl's.
const (
	aclAccess  = posixacl.AccessName
	aclDefault = posixacl.DefaultName

	aclUserObj  = posixacl.UserObj
	aclUser     = posixacl.User
	aclGroupObj = posixacl.GroupObj
	aclGroup    = posixacl.Group
	aclMask     = posixacl.Mask
	aclOther    = posixacl.Other
)

// servedXattrs returns xs without ACLs that the kernel would refuse, logging each one left out.
func servedXattrs(log *slog.Logger, n uint64, xs []index.Xattr) []index.Xattr {
	for i, x := range xs {
		if posixacl.IsName(x.Name) && !posixacl.Valid(x.Value) {
			out := append([]index.Xattr(nil), xs[:i]...)
			log.Debug("fs: hiding an ACL the kernel would refuse", "node", n, "xattr", x.Name)
			for _, y := range xs[i+1:] {
				if posixacl.IsName(y.Name) && !posixacl.Valid(y.Value) {
					log.Debug("fs: hiding an ACL the kernel would refuse", "node", n, "xattr", y.Name)
					continue
				}
				out = append(out, y)
			}
			return out
		}
	}
	return xs
}

// defaultACL returns the default ACL among a directory's xattrs xs when it has one that applies to new
// entries (valid, not empty); nil otherwise.
func defaultACL(xs []index.Xattr) []byte {
	for _, x := range xs {
		if x.Name == aclDefault && len(x.Value) > 4 && posixacl.Valid(x.Value) {
			return x.Value
		}
	}
	return nil
}

// inheritedACL returns the access ACL that a new node made with permission bits mode gets from its
// parent's default ACL def, as POSIX and Linux file systems have it (posix_acl_create): every entry
// kept, with the owner's, the mask's (the owning group's when there is no mask) and other's permissions
// limited by the matching bits of mode. The new node's mode bits follow from it.
func inheritedACL(def []byte, mode uint32) []byte {
	acl := append([]byte(nil), def...)
	hasMask := false
	for i := 4; i+8 <= len(acl); i += 8 {
		if binary.LittleEndian.Uint16(acl[i:]) == aclMask {
			hasMask = true
		}
	}
	for i := 4; i+8 <= len(acl); i += 8 {
		var bits uint32
		switch binary.LittleEndian.Uint16(acl[i:]) {
		case aclUserObj:
			bits = mode >> 6
		case aclMask:
			bits = mode >> 3
		case aclGroupObj:
			if hasMask {
				continue
			}
			bits = mode >> 3
		case aclOther:
			bits = mode
		default:
			continue
		}
		perm := binary.LittleEndian.Uint16(acl[i+2:]) & uint16(bits&7)
		binary.LittleEndian.PutUint16(acl[i+2:], perm)
	}
	return acl
}

// inheritACL gives node a, just made in a directory whose default ACL is def (nil: none), the ACLs it
// inherits: the access ACL, which also sets its mode bits, and for a directory the default ACL too.
// It returns the node's attributes afterwards. Symbolic links have no ACLs.
func (fs *fileSystem[D]) inheritACL(a overlay.Attr, def []byte) (overlay.Attr, error) {
	if def == nil || a.Type == index.TypeSymlink {
		return a, nil
	}
	if err := fs.wview.SetXattr(a.Node, aclAccess, inheritedACL(def, a.Mode), 0); err != nil {
		return a, fmt.Errorf("inheriting the default ACL: %w", err)
	}
	if a.Type == index.TypeDir {
		if err := fs.wview.SetXattr(a.Node, aclDefault, def, 0); err != nil {
			return a, fmt.Errorf("inheriting the default ACL: %w", err)
		}
	}
	return fs.view.Attr(a.Node)
}

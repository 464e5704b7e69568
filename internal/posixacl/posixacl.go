// Package posixacl holds the kernel's xattr form of POSIX ACLs (system.posix_acl_access and
// system.posix_acl_default): the names, the entry tags, and the one rule for a value the kernel
// accepts, which the index (text ACLs of tar members, modes from access ACLs) and the mount (ACLs it
// serves or hides) both apply. It imports nothing of the module.
//
// A value is a little-endian header (version 2) and entries of tag (u16), permissions (u16) and id (u32).
package posixacl

import "encoding/binary"

// The xattrs that hold ACLs.
const (
	AccessName  = "system.posix_acl_access"
	DefaultName = "system.posix_acl_default"
)

// Version is the only header version the kernel reads.
const Version = 2

// Entry tags, in the order the entries of a valid ACL come in.
const (
	UserObj  = 0x01
	User     = 0x02
	GroupObj = 0x04
	Group    = 0x08
	Mask     = 0x10
	Other    = 0x20
)

// NoID is the id of an entry that names no user or group (the owner, owning group, mask and other).
const NoID = ^uint32(0)

// Entry is one entry of an ACL: a tag, rwx permission bits and, for User and Group, the id.
type Entry struct {
	Tag, Perm uint16
	ID        uint32
}

// Encode returns the xattr form of entries, in the order given (a valid ACL has them sorted by tag,
// then id).
func Encode(entries []Entry) []byte {
	v := binary.LittleEndian.AppendUint32(make([]byte, 0, 4+8*len(entries)), Version)
	for _, e := range entries {
		v = binary.LittleEndian.AppendUint16(v, e.Tag)
		v = binary.LittleEndian.AppendUint16(v, e.Perm)
		v = binary.LittleEndian.AppendUint32(v, e.ID)
	}
	return v
}

// IsName reports whether name is one of the xattrs that hold ACLs.
func IsName(name string) bool { return name == AccessName || name == DefaultName }

// Valid reports whether v is an ACL the kernel accepts (posix_acl_from_xattr and posix_acl_valid):
// version 2, whole entries, tags in ascending order with the ids of named entries ascending and not
// NoID, exactly one owner, owning group and other entry, a mask when there are named entries, and no
// permission bits beyond rwx. An empty ACL (the header alone) is valid: it means none.
func Valid(v []byte) bool {
	if len(v) < 4 || (len(v)-4)%8 != 0 || binary.LittleEndian.Uint32(v) != Version {
		return false
	}
	n := (len(v) - 4) / 8
	if n == 0 {
		return true
	}
	var seen, prevTag uint16
	var prevID uint32
	named := false
	for i := range n {
		e := v[4+8*i:]
		tag := binary.LittleEndian.Uint16(e)
		perm := binary.LittleEndian.Uint16(e[2:])
		id := binary.LittleEndian.Uint32(e[4:])
		if perm&^7 != 0 || tag < prevTag {
			return false
		}
		switch tag {
		case UserObj, GroupObj, Mask, Other:
			if seen&tag != 0 {
				return false
			}
		case User, Group:
			if id == NoID || (tag == prevTag && id <= prevID) {
				return false
			}
			named = true
		default:
			return false
		}
		seen |= tag
		prevTag, prevID = tag, id
	}
	const required = UserObj | GroupObj | Other
	return seen&required == required && (!named || seen&Mask != 0)
}

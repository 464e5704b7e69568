package index

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strconv"

	"github.com/imgfs/imgfs/internal/posixacl"
)

// POSIX ACLs in tar. Tools write them two ways: as the xattrs system.posix_acl_access and
// system.posix_acl_default in the kernel's binary form (SCHILY.xattr.* records: containerd, buildkit,
// GNU tar --xattrs), or as text in SCHILY.acl.access and SCHILY.acl.default (GNU tar --acls, bsdtar
// --acls, star). The table keeps them as the xattrs, so text records become binary ones here; a member
// with both keeps its binary record. The xattr form, and which ACL the kernel accepts, are package
// posixacl's.

// aclFromText converts an ACL in text form to the kernel's xattr form (version 2, then entries of tag,
// permissions and id, little endian, sorted by tag and id). Entries are separated by commas or
// newlines and read "tag:qualifier:perms" with an optional fourth field holding the numeric id (star
// and bsdtar write "user:alice:r--:1000"); tags are user, group, mask and other (or u, g, m, o), an
// optional "default:" prefix is ignored, and so is anything after '#'. A qualifier that is a name with
// no numeric id cannot be resolved without the image's user database: ok is false, and so it is for an
// empty ACL and for one the kernel would refuse (posixacl.Valid: a missing owner, group or other entry,
// a mask missing with named entries, a duplicate).
func aclFromText(text []byte) (v []byte, ok bool) {
	var es []posixacl.Entry
	for len(text) > 0 {
		var e []byte
		if i := bytes.IndexAny(text, ",\n"); i >= 0 {
			e, text = text[:i], text[i+1:]
		} else {
			e, text = text, nil
		}
		if i := bytes.IndexByte(e, '#'); i >= 0 {
			e = e[:i]
		}
		e = bytes.TrimSpace(e)
		if len(e) == 0 {
			continue
		}
		e = bytes.TrimPrefix(e, []byte("default:"))
		f := bytes.Split(e, []byte(":"))
		var ent posixacl.Entry
		switch string(f[0]) {
		case "user", "u":
			ent.Tag = posixacl.UserObj
		case "group", "g":
			ent.Tag = posixacl.GroupObj
		case "mask", "m":
			ent.Tag = posixacl.Mask
		case "other", "o":
			ent.Tag = posixacl.Other
		default:
			return nil, false
		}
		var qual, perm, id []byte
		switch len(f) {
		case 2: // "mask:rwx", "other:r--"
			if ent.Tag != posixacl.Mask && ent.Tag != posixacl.Other {
				return nil, false
			}
			perm = f[1]
		case 3:
			qual, perm = f[1], f[2]
		case 4:
			qual, perm, id = f[1], f[2], f[3]
		default:
			return nil, false
		}
		ent.ID = posixacl.NoID
		if len(qual) > 0 {
			switch ent.Tag {
			case posixacl.UserObj:
				ent.Tag = posixacl.User
			case posixacl.GroupObj:
				ent.Tag = posixacl.Group
			default:
				return nil, false
			}
			n, err := strconv.ParseUint(string(qual), 10, 32)
			if err != nil {
				if n, err = strconv.ParseUint(string(id), 10, 32); err != nil {
					return nil, false
				}
			}
			if n == uint64(posixacl.NoID) {
				return nil, false
			}
			ent.ID = uint32(n)
		}
		for _, c := range perm {
			switch c {
			case 'r':
				ent.Perm |= 4
			case 'w':
				ent.Perm |= 2
			case 'x':
				ent.Perm |= 1
			case '-':
			default:
				return nil, false
			}
		}
		es = append(es, ent)
	}
	slices.SortFunc(es, func(a, b posixacl.Entry) int {
		if a.Tag != b.Tag {
			return int(a.Tag) - int(b.Tag)
		}
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	if len(es) == 0 {
		return nil, false
	}
	v = posixacl.Encode(es)
	if !posixacl.Valid(v) {
		return nil, false
	}
	return v, true
}

// addTextACLs adds the pending member's text ACLs as xattrs, unless it has the binary xattr already.
func (s *tarScanner) addTextACLs() {
	for _, a := range []struct {
		name string
		text []byte
	}{{posixacl.AccessName, s.pax.aclAccess}, {posixacl.DefaultName, s.pax.aclDefault}} {
		if a.text == nil || s.hasXattr(a.name) {
			continue
		}
		if v, ok := aclFromText(a.text); ok {
			s.addXattr([]byte(a.name), v)
		}
	}
}

// hasXattr reports whether the pending member has an xattr called name.
func (s *tarScanner) hasXattr(name string) bool {
	for _, r := range s.xattrRefs {
		if string(s.xattrBuf[r.off:r.off+r.nameLen]) == name {
			return true
		}
	}
	return false
}

// aclMode returns mode with its permission bits taken from the access ACL among xs, when there is one
// the kernel accepts (posixacl.Valid, not empty): the owner's from the owner entry, the group's from the
// mask (the owning group's entry when there is no mask), other's from the other entry; setuid, setgid
// and sticky stay. That is the mode a file system gives a file when the ACL is set (tar extraction sets
// it after the mode), and the kernel consults the ACL only when the group bits are not all clear. An ACL
// the kernel refuses leaves the mode alone, as it does on a tree whose extractor could not set it (and
// the mount hides such an ACL).
func aclMode(xs []tarXattr, mode uint32) uint32 {
	for _, x := range xs {
		if string(x.Name) != posixacl.AccessName {
			continue
		}
		v := x.Value
		if len(v) == 4 || !posixacl.Valid(v) {
			return mode
		}
		var user, group, mask, other uint32
		var seen uint16
		for i := 4; i < len(v); i += 8 {
			tag, perm := binary.LittleEndian.Uint16(v[i:]), uint32(binary.LittleEndian.Uint16(v[i+2:])&7)
			switch tag {
			case posixacl.UserObj:
				user = perm
			case posixacl.GroupObj:
				group = perm
			case posixacl.Mask:
				mask = perm
			case posixacl.Other:
				other = perm
			}
			seen |= tag
		}
		if seen&posixacl.Mask != 0 {
			group = mask
		}
		return mode&^0o777 | user<<6 | group<<3 | other
	}
	return mode
}

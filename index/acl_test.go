package index

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/imgfs/imgfs/internal/posixacl"
	"github.com/imgfs/imgfs/internal/tartest"
)

// binACL builds an ACL in the kernel's xattr form from (tag, perm, id) triples.
func binACL(entries ...[3]uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, uint16(e[0]))
		b = binary.LittleEndian.AppendUint16(b, uint16(e[1]))
		b = binary.LittleEndian.AppendUint32(b, e[2])
	}
	return b
}

const noACLID = ^uint32(0)

func TestACLFromText(t *testing.T) {
	t.Parallel()
	named := binACL([3]uint32{posixacl.UserObj, 6, noACLID}, [3]uint32{posixacl.User, 4, 1000}, [3]uint32{posixacl.GroupObj, 0, noACLID},
		[3]uint32{posixacl.Group, 5, 60}, [3]uint32{posixacl.Mask, 4, noACLID}, [3]uint32{posixacl.Other, 0, noACLID})
	for _, tt := range []struct {
		name, text string
		want       []byte // nil: refused
	}{
		{"GNU tar, numeric", "user::rw-\nuser:1000:r--\ngroup::---\ngroup:60:r-x\nmask::r--\nother::---\n", named},
		{"star and bsdtar, names with ids, unsorted", "user::rw-,group::---,other::---,user:alice:r--:1000,group:staff:r-x:60,mask::r--", named},
		{"short tags, comments, default prefix", "default:u::rw-,u:1000:r--  #effective:r--,g::---,g:60:r-x,m:r--,o:---", named},
		{"minimal", "user::rwx,group::r-x,other::r-x", binACL([3]uint32{posixacl.UserObj, 7, noACLID}, [3]uint32{posixacl.GroupObj, 5, noACLID}, [3]uint32{posixacl.Other, 5, noACLID})},
		{"a name without an id", "user::rw-,user:alice:r--,group::---,mask::r--,other::---", nil},
		{"named without a mask", "user::rw-,user:1000:r--,group::---,other::---", nil},
		{"no other", "user::rw-,group::---", nil},
		{"duplicate owner", "user::rw-,user::r--,group::---,other::---", nil},
		{"duplicate named", "user::rw-,user:7:r--,user:7:rw-,group::---,mask::rw-,other::---", nil},
		{"bad perms", "user::rwz,group::---,other::---", nil},
		{"bad tag", "everyone::r--,user::rw-,group::---,other::---", nil},
		{"qualified mask", "user::rw-,group::---,mask:5:r--,other::---", nil},
		{"id -1", "user::rw-,user:4294967295:r--,group::---,mask::r--,other::---", nil},
		{"empty", "", nil},
	} {
		got, ok := aclFromText([]byte(tt.text))
		if ok != (tt.want != nil) || !slices.Equal(got, tt.want) {
			t.Errorf("%s: aclFromText = %x, %v; want %x", tt.name, got, ok, tt.want)
		}
	}
}

// TestScanTextACLs checks that SCHILY.acl.* text records become the ACL xattrs, and that a binary
// SCHILY.xattr record of the same ACL wins over the text, wherever it comes.
func TestScanTextACLs(t *testing.T) {
	t.Parallel()
	text := "user::rw-,user:alice:r--:1000,group::---,mask::r--,other::---"
	bin := string(binACL([3]uint32{posixacl.UserObj, 6, noACLID}, [3]uint32{posixacl.User, 4, 1000}, [3]uint32{posixacl.GroupObj, 0, noACLID},
		[3]uint32{posixacl.Mask, 4, noACLID}, [3]uint32{posixacl.Other, 0, noACLID}))
	other := string(binACL([3]uint32{posixacl.UserObj, 7, noACLID}, [3]uint32{posixacl.GroupObj, 7, noACLID}, [3]uint32{posixacl.Other, 7, noACLID}))
	data := tartest.Tar(t,
		tartest.Member{Name: "text", PAX: map[string]string{"SCHILY.acl.access": text}},
		tartest.Member{Name: "dir", Type: '5', PAX: map[string]string{"SCHILY.acl.default": text}},
		tartest.Member{Name: "both", PAX: map[string]string{"SCHILY.acl.access": text}, Xattrs: map[string]string{posixacl.AccessName: other}},
		tartest.Member{Name: "unresolved", PAX: map[string]string{"SCHILY.acl.access": "user::rw-,user:alice:r--,group::---,mask::r--,other::---"}},
		tartest.File("plain", "x"),
	)
	ms, err := scanAll(data, modeReader)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"text":       {posixacl.AccessName + "=" + bin},
		"dir/":       {posixacl.DefaultName + "=" + bin},
		"dir":        {posixacl.DefaultName + "=" + bin},
		"both":       {posixacl.AccessName + "=" + other},
		"unresolved": nil,
		"plain":      nil,
	}
	for _, m := range ms {
		w, ok := want[m.Name]
		if !ok {
			t.Errorf("unexpected member %q", m.Name)
			continue
		}
		if !slices.Equal(m.Xattrs, w) {
			t.Errorf("%s: xattrs %q, want %q", m.Name, m.Xattrs, w)
		}
	}
}

func TestACLMode(t *testing.T) {
	t.Parallel()
	withMask := binACL([3]uint32{posixacl.UserObj, 6, noACLID}, [3]uint32{posixacl.User, 4, 1000}, [3]uint32{posixacl.GroupObj, 0, noACLID},
		[3]uint32{posixacl.Mask, 5, noACLID}, [3]uint32{posixacl.Other, 1, noACLID})
	minimal := binACL([3]uint32{posixacl.UserObj, 7, noACLID}, [3]uint32{posixacl.GroupObj, 2, noACLID}, [3]uint32{posixacl.Other, 0, noACLID})
	// Refused by the kernel (so hidden by the mount): a named entry without a mask; two owners.
	noMask := binACL([3]uint32{posixacl.UserObj, 7, noACLID}, [3]uint32{posixacl.User, 7, 1000}, [3]uint32{posixacl.GroupObj, 2, noACLID},
		[3]uint32{posixacl.Other, 0, noACLID})
	twoOwners := binACL([3]uint32{posixacl.UserObj, 7, noACLID}, [3]uint32{posixacl.UserObj, 1, noACLID}, [3]uint32{posixacl.GroupObj, 2, noACLID},
		[3]uint32{posixacl.Other, 0, noACLID})
	for _, tt := range []struct {
		name       string
		xs         []tarXattr
		mode, want uint32
	}{
		{"mask rules the group bits", []tarXattr{{Name: []byte(posixacl.AccessName), Value: withMask}}, 0o4600, 0o4651},
		{"no mask: the owning group", []tarXattr{{Name: []byte("user.x")}, {Name: []byte(posixacl.AccessName), Value: minimal}}, 0o1777, 0o1720},
		{"default ACL only", []tarXattr{{Name: []byte(posixacl.DefaultName), Value: withMask}}, 0o755, 0o755},
		{"malformed", []tarXattr{{Name: []byte(posixacl.AccessName), Value: []byte("junk")}}, 0o640, 0o640},
		{"named without a mask", []tarXattr{{Name: []byte(posixacl.AccessName), Value: noMask}}, 0o640, 0o640},
		{"two owners", []tarXattr{{Name: []byte(posixacl.AccessName), Value: twoOwners}}, 0o640, 0o640},
		{"none", nil, 0o600, 0o600},
	} {
		if got := aclMode(tt.xs, tt.mode); got != tt.want {
			t.Errorf("%s: aclMode = %#o, want %#o", tt.name, got, tt.want)
		}
	}
}

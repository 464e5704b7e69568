package fs

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/imgfs/imgfs/index"
)

// acl builds an ACL in the kernel's xattr format from (tag, perm, id) triples.
func acl(version uint32, entries ...[3]uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, version)
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, uint16(e[0]))
		b = binary.LittleEndian.AppendUint16(b, uint16(e[1]))
		b = binary.LittleEndian.AppendUint32(b, e[2])
	}
	return b
}

const noID = ^uint32(0)

func TestInheritedACL(t *testing.T) {
	t.Parallel()
	def := acl(2, [3]uint32{aclUserObj, 7, noID}, [3]uint32{aclUser, 7, 1000}, [3]uint32{aclGroupObj, 5, noID},
		[3]uint32{aclMask, 7, noID}, [3]uint32{aclOther, 5, noID})
	want := acl(2, [3]uint32{aclUserObj, 6, noID}, [3]uint32{aclUser, 7, 1000}, [3]uint32{aclGroupObj, 5, noID},
		[3]uint32{aclMask, 6, noID}, [3]uint32{aclOther, 4, noID})
	if got := inheritedACL(def, 0o664); !slices.Equal(got, want) {
		t.Errorf("with a mask: %x, want %x", got, want)
	}
	def = acl(2, [3]uint32{aclUserObj, 7, noID}, [3]uint32{aclGroupObj, 7, noID}, [3]uint32{aclOther, 7, noID})
	want = acl(2, [3]uint32{aclUserObj, 6, noID}, [3]uint32{aclGroupObj, 0, noID}, [3]uint32{aclOther, 0, noID})
	if got := inheritedACL(def, 0o600); !slices.Equal(got, want) {
		t.Errorf("without a mask: %x, want %x", got, want)
	}
}

func TestServedXattrsHidesBadACLs(t *testing.T) {
	t.Parallel()
	good := acl(2, [3]uint32{aclUserObj, 6, noID}, [3]uint32{aclGroupObj, 4, noID}, [3]uint32{aclOther, 4, noID})
	xs := []index.Xattr{{Name: aclAccess, Value: []byte("garbage")}, {Name: aclDefault, Value: good}, {Name: "user.x", Value: []byte("y")}}
	got := servedXattrs(newFileSystem[*fakeDir](newFakeView(), Options{}).log, 1, xs)
	if len(got) != 2 || got[0].Name != aclDefault || got[1].Name != "user.x" {
		t.Errorf("servedXattrs = %v", got)
	}
	if got := servedXattrs(nil, 1, xs[1:]); len(got) != 2 {
		t.Errorf("servedXattrs changed valid xattrs: %v", got)
	}
}

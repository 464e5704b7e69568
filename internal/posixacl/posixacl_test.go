package posixacl

import (
	"encoding/binary"
	"testing"
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

const noID = NoID

func TestValid(t *testing.T) {
	t.Parallel()
	minimal := [][3]uint32{{UserObj, 6, noID}, {GroupObj, 4, noID}, {Other, 4, noID}}
	for _, tt := range []struct {
		name string
		v    []byte
		want bool
	}{
		{"minimal", acl(2, minimal...), true},
		{"empty", acl(2), true},
		{"named with mask", acl(2, [3]uint32{UserObj, 6, noID}, [3]uint32{User, 4, 1000}, [3]uint32{User, 4, 1001},
			[3]uint32{GroupObj, 0, noID}, [3]uint32{Group, 4, 60}, [3]uint32{Mask, 4, noID}, [3]uint32{Other, 0, noID}), true},
		{"named without mask", acl(2, [3]uint32{UserObj, 6, noID}, [3]uint32{User, 4, 1000},
			[3]uint32{GroupObj, 0, noID}, [3]uint32{Other, 0, noID}), false},
		{"version 1", acl(1, minimal...), false},
		{"short", []byte{2, 0, 0}, false},
		{"partial entry", append(acl(2, minimal...), 1, 2, 3), false},
		{"no other", acl(2, [3]uint32{UserObj, 6, noID}, [3]uint32{GroupObj, 4, noID}), false},
		{"two owners", acl(2, [3]uint32{UserObj, 6, noID}, [3]uint32{UserObj, 6, noID},
			[3]uint32{GroupObj, 4, noID}, [3]uint32{Other, 4, noID}), false},
		{"unsorted tags", acl(2, [3]uint32{GroupObj, 4, noID}, [3]uint32{UserObj, 6, noID}, [3]uint32{Other, 4, noID}), false},
		{"unsorted ids", acl(2, [3]uint32{UserObj, 6, noID}, [3]uint32{User, 4, 1001}, [3]uint32{User, 4, 1000},
			[3]uint32{GroupObj, 0, noID}, [3]uint32{Mask, 4, noID}, [3]uint32{Other, 0, noID}), false},
		{"invalid id", acl(2, [3]uint32{UserObj, 6, noID}, [3]uint32{User, 4, noID},
			[3]uint32{GroupObj, 0, noID}, [3]uint32{Mask, 4, noID}, [3]uint32{Other, 0, noID}), false},
		{"bad perm", acl(2, [3]uint32{UserObj, 8, noID}, [3]uint32{GroupObj, 4, noID}, [3]uint32{Other, 4, noID}), false},
		{"bad tag", acl(2, [3]uint32{UserObj, 6, noID}, [3]uint32{GroupObj, 4, noID}, [3]uint32{0x40, 4, noID}), false},
	} {
		if got := Valid(tt.v); got != tt.want {
			t.Errorf("%s: Valid = %v, want %v", tt.name, got, tt.want)
		}
	}
}

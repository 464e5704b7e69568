package posixacl

import (
	"bytes"
	"testing"
)

// acl is Encode of (tag, perm, id) triples with the header's version set to version.
func acl(version uint32, entries ...[3]uint32) []byte {
	es := make([]Entry, len(entries))
	for i, e := range entries {
		es[i] = Entry{Tag: uint16(e[0]), Perm: uint16(e[1]), ID: e[2]}
	}
	v := Encode(es)
	v[0] = byte(version)
	return v
}

const noID = NoID

func TestEncode(t *testing.T) {
	t.Parallel()
	got := Encode([]Entry{{UserObj, 6, NoID}, {User, 4, 0x01020304}})
	want := []byte{2, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, 2, 0, 4, 0, 4, 3, 2, 1}
	if !bytes.Equal(got, want) {
		t.Errorf("Encode = %x, want %x", got, want)
	}
}

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

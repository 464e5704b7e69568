//go:build unix

package index

import (
	"syscall"
	"testing"
)

// TestTypeOfMode holds the one mode ↔ type mapping to the system's S_IF* bits, both ways.
func TestTypeOfMode(t *testing.T) {
	t.Parallel()
	for typ, bits := range map[Type]uint32{
		TypeRegular: syscall.S_IFREG, TypeDir: syscall.S_IFDIR, TypeSymlink: syscall.S_IFLNK,
		TypeChar: syscall.S_IFCHR, TypeBlock: syscall.S_IFBLK, TypeFIFO: syscall.S_IFIFO, TypeSocket: syscall.S_IFSOCK,
	} {
		if got := typ.Mode(); got != bits {
			t.Errorf("%v.Mode() = %#o, want %#o", typ, got, bits)
		}
		if got := TypeOfMode(bits | 0o4755); got != typ {
			t.Errorf("TypeOfMode(%#o) = %v, want %v", bits|0o4755, got, typ)
		}
	}
	for _, m := range []uint32{0o644, 0o030000, 0o070000} {
		if got := TypeOfMode(m); got != 0 {
			t.Errorf("TypeOfMode(%#o) = %v, want 0", m, got)
		}
	}
	if m := TypeHardlink.Mode(); m != 0 {
		t.Errorf("TypeHardlink.Mode() = %#o, want 0", m)
	}
}

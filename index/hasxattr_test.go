package index

import (
	"encoding/binary"
	"testing"

	"github.com/imgfs/imgfs/internal/tartest"
)

// TestHasXattr checks that a table reports an extended attribute by name exactly when a member has it,
// and says yes when its attributes cannot be read to the end.
func TestHasXattr(t *testing.T) {
	data := tartest.Tar(t,
		tartest.File("plain", "x"),
		tartest.Member{Name: "a", Body: []byte("y"), Xattrs: map[string]string{"user.one": "1", "security.capability": "\x01"}},
		tartest.Member{Name: "b", Body: []byte("z"), Xattrs: map[string]string{"user.two": "22"}})
	l := openBytes(t, data, Options{})
	if !l.HasXattrs() {
		t.Error("HasXattrs = false")
	}
	for name, want := range map[string]bool{"user.one": true, "user.two": true, "security.capability": true,
		"security.selinux": false, "user.on": false, "": false} {
		if got := l.HasXattr(name); got != want {
			t.Errorf("HasXattr(%q) = %v, want %v", name, got, want)
		}
	}
	none := openBytes(t, tartest.Tar(t, tartest.File("f", "x")), Options{})
	if none.HasXattrs() || none.HasXattr("user.one") {
		t.Error("a table without xattrs reports some")
	}
	// An arena cut short, or whose lengths run past its end, may hold anything.
	arena := binary.LittleEndian.AppendUint32(nil, 1)
	arena = binary.LittleEndian.AppendUint32(arena, 100) // name length past the end
	arena = binary.LittleEndian.AppendUint32(arena, 0)
	for _, b := range [][]byte{arena, arena[:2], arena[:6]} {
		if !(&Table{xattrs: b}).HasXattr("user.x") {
			t.Errorf("arena %x: HasXattr = false, want true", b)
		}
	}
}

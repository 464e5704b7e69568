package fs

import (
	"errors"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/imgfs/imgfs/overlay"
)

// unlistedView answers user.prov (and, to show the listed attribute wins, user.comment) without
// listing them; user.bad fails.
type unlistedView struct{ *fakeView }

func (unlistedView) UnlistedXattr(n overlay.Node, name string) ([]byte, bool, error) {
	switch name {
	case "user.prov", "user.comment":
		return []byte("from the view"), true, nil
	case "user.bad":
		return nil, false, errors.New("broken")
	}
	return nil, false, nil
}

// TestUnlistedXattrs: GETXATTR answers a view's unlisted attributes with the usual size protocol,
// after the listed ones; LISTXATTR does not list them.
func TestUnlistedXattrs(t *testing.T) {
	fx, err := newFixture("")
	if err != nil {
		t.Fatal(err)
	}
	fsys := newFileSystem(unlistedView{fx.v}, Options{})
	h := hdr(fx.file.attr.Node)
	for _, tt := range []struct {
		name    string
		bufSize int
		want    string
		n       uint32
		st      fuse.Status
	}{
		{"user.prov", 0, "", 13, fuse.OK},
		{"user.prov", 13, "from the view", 13, fuse.OK},
		{"user.prov", 12, "", 13, fuse.ERANGE},
		{"user.comment", 100, "a comment", 9, fuse.OK}, // the listed value wins
		{"user.missing", 100, "", 0, fuse.Status(syscall.ENODATA)},
		{"user.bad", 100, "", 0, fuse.EIO},
	} {
		buf := make([]byte, tt.bufSize)
		n, st := fsys.GetXAttr(nil, &h, tt.name, buf)
		if st != tt.st || n != tt.n || st == fuse.OK && tt.bufSize > 0 && string(buf[:n]) != tt.want {
			t.Errorf("GetXAttr(%q, %d) = %d %v %q, want %d %v %q", tt.name, tt.bufSize, n, st, buf[:min(int(n), len(buf))], tt.n, tt.st, tt.want)
		}
	}
	buf := make([]byte, 1024)
	n, st := fsys.ListXAttr(nil, &h, buf)
	if want := "user.comment\x00security.capability\x00"; st != fuse.OK || string(buf[:n]) != want {
		t.Errorf("ListXAttr = %q %v, want %q", buf[:n], st, want)
	}
}

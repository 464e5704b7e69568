package fs

import (
	"slices"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

// TestLseekWithoutMap checks LSEEK on a file whose view cannot tell where its data lies: all data, the
// end of the file the only hole, ENXIO at or past the end, EINVAL for other whences.
func TestLseekWithoutMap(t *testing.T) {
	t.Parallel()
	fsys, fx := newTestFS(t)
	var open fuse.OpenOut
	if st := fsys.Open(nil, &fuse.OpenIn{InHeader: hdr(fx.file.attr.Node), Flags: syscall.O_RDONLY}, &open); st != fuse.OK {
		t.Fatalf("Open = %v", st)
	}
	size := uint64(len(fx.file.data))
	for _, tt := range []struct {
		off    uint64
		whence uint32
		want   uint64
		st     fuse.Status
	}{
		{0, unix.SEEK_DATA, 0, fuse.OK},
		{1, unix.SEEK_DATA, 1, fuse.OK},
		{0, unix.SEEK_HOLE, size, fuse.OK},
		{size, unix.SEEK_DATA, 0, fuse.Status(unix.ENXIO)},
		{size, unix.SEEK_HOLE, 0, fuse.Status(unix.ENXIO)},
		{1 << 63, unix.SEEK_DATA, 0, fuse.Status(unix.ENXIO)},
		{0, unix.SEEK_END, 0, fuse.EINVAL},
	} {
		var out fuse.LseekOut
		st := fsys.Lseek(nil, &fuse.LseekIn{InHeader: hdr(fx.file.attr.Node), Fh: open.Fh, Offset: tt.off, Whence: tt.whence}, &out)
		if st != tt.st || st == fuse.OK && out.Offset != tt.want {
			t.Errorf("Lseek(%d, %d) = %d, %v; want %d, %v", tt.off, tt.whence, out.Offset, st, tt.want, tt.st)
		}
	}
	if st := fsys.Lseek(nil, &fuse.LseekIn{Fh: 999, Whence: unix.SEEK_DATA}, &fuse.LseekOut{}); st != fuse.EBADF {
		t.Errorf("Lseek on an unknown handle = %v", st)
	}
}

// TestReadDirHidesPollHackName checks that the root's listings leave out the name go-fuse answers
// itself, and that the name is an ordinary one below the root.
func TestReadDirHidesPollHackName(t *testing.T) {
	t.Parallel()
	v := newFakeView()
	v.add(overlay.Root, pollHackName, index.TypeRegular, 0o644)
	v.add(overlay.Root, "z", index.TypeRegular, 0o644)
	sub := v.dir(overlay.Root, "sub")
	v.add(sub, pollHackName, index.TypeRegular, 0o644)
	fsys := newFileSystem(v, Options{})
	for _, plus := range []bool{false, true} {
		for _, tt := range []struct {
			dir  overlay.Node
			want []string
		}{
			{overlay.Root, []string{".", "..", "sub", "z"}},
			{sub, []string{".", "..", pollHackName}},
		} {
			ents, _ := listDir(t, fsys, tt.dir, plus, 4096, 0)
			var names []string
			for _, e := range ents {
				names = append(names, e.name)
			}
			if !slices.Equal(names, tt.want) {
				t.Errorf("plus=%v dir %d: names %q, want %q", plus, tt.dir, names, tt.want)
			}
		}
	}
}

package fs

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

// caller is the header of a request made by uid:gid on node n.
func caller(n overlay.Node, uid, gid uint32) fuse.InHeader {
	return fuse.InHeader{NodeId: uint64(n), Caller: fuse.Caller{Owner: fuse.Owner{Uid: uid, Gid: gid}}}
}

// writeFixture is a writable fake view: a file with data, a directory with a child, a setgid directory.
type writeFixture struct {
	v          *fakeWView
	fsys       *fileSystem[*fakeDir]
	file       *fakeNode
	dir, sgid  overlay.Node
	dirChild   *fakeNode
	sgidParent *fakeNode
}

func newWriteFixture(t *testing.T) *writeFixture {
	t.Helper()
	v := newFakeWView()
	fx := &writeFixture{v: v}
	fx.file = v.file(overlay.Root, "file", []byte("0123456789"))
	fx.dir = v.dir(overlay.Root, "dir")
	fx.dirChild = v.file(fx.dir, "child", []byte("child"))
	fx.sgidParent = v.add(overlay.Root, "sgid", index.TypeDir, 0o2775)
	fx.sgidParent.attr.GID = 50
	fx.sgid = fx.sgidParent.attr.Node
	fx.fsys = newFileSystem(v, Options{UpperDir: t.TempDir()})
	return fx
}

func (fx *writeFixture) create(t *testing.T, parent overlay.Node, name string, flags uint32) (*fuse.CreateOut, fuse.Status) {
	t.Helper()
	var out fuse.CreateOut
	st := fx.fsys.Create(nil, &fuse.CreateIn{InHeader: caller(parent, 1000, 100), Flags: flags, Mode: syscall.S_IFREG | 0o666, Umask: 0o022}, name, &out)
	return &out, st
}

func (fx *writeFixture) open(t *testing.T, n overlay.Node, flags uint32) uint64 {
	t.Helper()
	var out fuse.OpenOut
	if st := fx.fsys.Open(nil, &fuse.OpenIn{InHeader: hdr(n), Flags: flags}, &out); st != fuse.OK {
		t.Fatalf("open %d flags %#o = %v", n, flags, st)
	}
	if out.OpenFlags&fuse.FOPEN_KEEP_CACHE != 0 {
		t.Errorf("open of a writable view's file keeps the page cache")
	}
	return out.Fh
}

func (fx *writeFixture) write(t *testing.T, fh uint64, off uint64, flags uint32, data string) {
	t.Helper()
	n, st := fx.fsys.Write(nil, &fuse.WriteIn{Fh: fh, Offset: off, Flags: flags}, []byte(data))
	if st != fuse.OK || n != uint32(len(data)) {
		t.Fatalf("write %q at %d = %d, %v", data, off, n, st)
	}
}

func (fx *writeFixture) read(t *testing.T, fh uint64) string {
	t.Helper()
	buf := make([]byte, 1<<10)
	res, st := fx.fsys.Read(nil, &fuse.ReadIn{Fh: fh, Size: uint32(len(buf))}, buf)
	if st != fuse.OK {
		t.Fatalf("read = %v", st)
	}
	b, _ := res.Bytes(buf)
	return string(b)
}

func TestCreate(t *testing.T) {
	t.Parallel()
	fx := newWriteFixture(t)
	out, st := fx.create(t, overlay.Root, "new", syscall.O_RDWR)
	if st != fuse.OK {
		t.Fatalf("create = %v", st)
	}
	// The caller owns the file; the umask applies.
	if out.Attr.Mode != syscall.S_IFREG|0o644 || out.Attr.Uid != 1000 || out.Attr.Gid != 100 || out.NodeId == 0 || out.Fh == 0 {
		t.Errorf("create: mode %o owner %d:%d node %d fh %d", out.Attr.Mode, out.Attr.Uid, out.Attr.Gid, out.NodeId, out.Fh)
	}
	if out.OpenFlags&fuse.FOPEN_KEEP_CACHE != 0 || out.EntryValid == 0 {
		t.Errorf("create: open flags %#x, entry timeout %d", out.OpenFlags, out.EntryValid)
	}
	fx.write(t, out.Fh, 0, 0, "hello")
	if got := fx.read(t, out.Fh); got != "hello" {
		t.Errorf("read back %q", got)
	}
	fx.fsys.Release(nil, &fuse.ReleaseIn{Fh: out.Fh})
	if c := fx.v.closes.Load(); c != 1 {
		t.Errorf("release closed %d files", c)
	}
	// A file created for reading only cannot be written through its handle.
	ro, st := fx.create(t, overlay.Root, "ro", syscall.O_RDONLY)
	if st != fuse.OK {
		t.Fatal(st)
	}
	if _, st := fx.fsys.Write(nil, &fuse.WriteIn{Fh: ro.Fh}, []byte("x")); st != fuse.EBADF {
		t.Errorf("write on a read-only handle = %v, want EBADF", st)
	}
	// In a setgid directory the group is the directory's.
	if out, st := fx.create(t, fx.sgid, "g", syscall.O_WRONLY); st != fuse.OK || out.Attr.Gid != 50 || out.Attr.Uid != 1000 {
		t.Errorf("create in a setgid dir = %v, owner %d:%d", st, out.Attr.Uid, out.Attr.Gid)
	}
	for _, tt := range []struct {
		parent overlay.Node
		name   string
		want   fuse.Status
	}{
		{overlay.Root, "new", fuse.Status(syscall.EEXIST)},
		{overlay.Root, ".wh.new", fuse.EPERM},
		{overlay.Root, ".wh..wh..opq", fuse.EPERM},
		{fx.file.attr.Node, "x", fuse.ENOTDIR},
		{12345, "x", fuse.ENOENT},
	} {
		if _, st := fx.create(t, tt.parent, tt.name, syscall.O_RDWR); st != tt.want {
			t.Errorf("create %d/%q = %v, want %v", tt.parent, tt.name, st, tt.want)
		}
	}
}

func TestMkdirMknodSymlink(t *testing.T) {
	t.Parallel()
	fx := newWriteFixture(t)
	h := caller(overlay.Root, 1000, 100)
	var out fuse.EntryOut
	if st := fx.fsys.Mkdir(nil, &fuse.MkdirIn{InHeader: h, Mode: 0o777, Umask: 0o027}, "d", &out); st != fuse.OK ||
		out.Attr.Mode != syscall.S_IFDIR|0o750 || out.Attr.Uid != 1000 || out.Attr.Gid != 100 {
		t.Errorf("mkdir = %v, mode %o owner %d:%d", st, out.Attr.Mode, out.Attr.Uid, out.Attr.Gid)
	}
	// A directory made in a setgid directory takes its group and the setgid bit.
	hs := caller(fx.sgid, 1000, 100)
	if st := fx.fsys.Mkdir(nil, &fuse.MkdirIn{InHeader: hs, Mode: 0o755}, "d", &out); st != fuse.OK ||
		out.Attr.Mode != syscall.S_IFDIR|0o2755 || out.Attr.Gid != 50 {
		t.Errorf("mkdir in a setgid dir = %v, mode %o gid %d", st, out.Attr.Mode, out.Attr.Gid)
	}
	if st := fx.fsys.Mkdir(nil, &fuse.MkdirIn{InHeader: h, Mode: 0o755}, ".wh.d", &out); st != fuse.EPERM {
		t.Errorf("mkdir .wh.d = %v", st)
	}
	for _, tt := range []struct {
		name         string
		mode, rdev   uint32
		want         fuse.Status
		typ          uint32
		major, minor uint32
	}{
		{"fifo", syscall.S_IFIFO | 0o666, 0, fuse.OK, syscall.S_IFIFO | 0o644, 0, 0},
		{"chr", syscall.S_IFCHR | 0o600, uint32(unix.Mkdev(1, 3)), fuse.OK, syscall.S_IFCHR | 0o600, 1, 3},
		{"blk", syscall.S_IFBLK | 0o600, uint32(unix.Mkdev(259, 1<<19+5)), fuse.OK, syscall.S_IFBLK | 0o600, 259, 1<<19 + 5},
		{"reg", syscall.S_IFREG | 0o640, 0, fuse.OK, syscall.S_IFREG | 0o640, 0, 0},
		{"sock", syscall.S_IFSOCK | 0o600, 0, fuse.OK, syscall.S_IFSOCK | 0o600, 0, 0}, // what bind(2) asks
		{"door", 0o170000 | 0o600, 0, fuse.EPERM, 0, 0, 0},
		{".wh.fifo", syscall.S_IFIFO | 0o600, 0, fuse.EPERM, 0, 0, 0},
		{"fifo", syscall.S_IFIFO | 0o600, 0, fuse.Status(syscall.EEXIST), 0, 0, 0},
	} {
		out = fuse.EntryOut{}
		st := fx.fsys.Mknod(nil, &fuse.MknodIn{InHeader: h, Mode: tt.mode, Rdev: tt.rdev, Umask: 0o022}, tt.name, &out)
		if st != tt.want {
			t.Errorf("mknod %s = %v, want %v", tt.name, st, tt.want)
			continue
		}
		if st != fuse.OK {
			continue
		}
		if out.Attr.Mode != tt.typ || out.Attr.Uid != 1000 || out.Attr.Rdev != uint32(unix.Mkdev(tt.major, tt.minor)) {
			t.Errorf("mknod %s: mode %o owner %d rdev %#x", tt.name, out.Attr.Mode, out.Attr.Uid, out.Attr.Rdev)
		}
	}
	if c := fx.v.closes.Load(); c != 1 {
		t.Errorf("mknod of a regular file left it open (%d closes)", c)
	}
	if st := fx.fsys.Symlink(nil, &hs, "../target", "ln", &out); st != fuse.OK ||
		out.Attr.Mode != syscall.S_IFLNK|0o777 || out.Attr.Size != 9 || out.Attr.Gid != 50 {
		t.Errorf("symlink = %v, mode %o size %d gid %d", st, out.Attr.Mode, out.Attr.Size, out.Attr.Gid)
	}
	if target, st := fx.fsys.Readlink(nil, &fuse.InHeader{NodeId: out.NodeId}); st != fuse.OK || string(target) != "../target" {
		t.Errorf("readlink = %q, %v", target, st)
	}
}

func TestLinkUnlinkRmdir(t *testing.T) {
	t.Parallel()
	fx := newWriteFixture(t)
	node := fx.file.attr.Node
	var out fuse.EntryOut
	if st := fx.fsys.Link(nil, &fuse.LinkIn{InHeader: hdr(fx.dir), Oldnodeid: uint64(node)}, "hard", &out); st != fuse.OK ||
		out.NodeId != uint64(node) || out.Attr.Nlink != 2 {
		t.Errorf("link = %v, node %d nlink %d", st, out.NodeId, out.Attr.Nlink)
	}
	if st := fx.fsys.Link(nil, &fuse.LinkIn{InHeader: hdr(fx.dir), Oldnodeid: uint64(node)}, ".wh.hard", &out); st != fuse.EPERM {
		t.Errorf("link to .wh.hard = %v", st)
	}
	fh := fx.open(t, node, syscall.O_RDONLY)
	for _, name := range []string{"file"} {
		h := hdr(overlay.Root)
		if st := fx.fsys.Unlink(nil, &h, name); st != fuse.OK {
			t.Errorf("unlink %s = %v", name, st)
		}
	}
	h := hdr(fx.dir)
	if st := fx.fsys.Unlink(nil, &h, "hard"); st != fuse.OK {
		t.Errorf("unlink hard = %v", st)
	}
	// Open but without a name: nlink 0, and still readable.
	var ao fuse.AttrOut
	if st := fx.fsys.GetAttr(nil, &fuse.GetAttrIn{InHeader: hdr(node)}, &ao); st != fuse.OK || ao.Nlink != 0 {
		t.Errorf("getattr of an unlinked file = %v, nlink %d", st, ao.Nlink)
	}
	if got := fx.read(t, fh); got != "0123456789" {
		t.Errorf("read of an unlinked file = %q", got)
	}
	root := hdr(overlay.Root)
	for _, tt := range []struct {
		op   func() fuse.Status
		name string
		want fuse.Status
	}{
		{func() fuse.Status { return fx.fsys.Unlink(nil, &root, "missing") }, "unlink missing", fuse.ENOENT},
		{func() fuse.Status { return fx.fsys.Unlink(nil, &root, "dir") }, "unlink dir", fuse.Status(syscall.EISDIR)},
		{func() fuse.Status { return fx.fsys.Rmdir(nil, &root, "dir") }, "rmdir non-empty", fuse.Status(syscall.ENOTEMPTY)},
		{func() fuse.Status { return fx.fsys.Unlink(nil, &h, "child") }, "unlink child", fuse.OK},
		{func() fuse.Status { return fx.fsys.Rmdir(nil, &root, "dir") }, "rmdir empty", fuse.OK},
		{func() fuse.Status { return fx.fsys.Rmdir(nil, &root, "dir") }, "rmdir again", fuse.ENOENT},
	} {
		if st := tt.op(); st != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, st, tt.want)
		}
	}
}

func TestRenameFlags(t *testing.T) {
	t.Parallel()
	fx := newWriteFixture(t)
	other := fx.v.file(overlay.Root, "other", []byte("other"))
	rename := func(flags uint32, from, to string) fuse.Status {
		return fx.fsys.Rename(nil, &fuse.RenameIn{InHeader: hdr(overlay.Root), Newdir: uint64(fx.dir), Flags: flags}, from, to)
	}
	for _, tt := range []struct {
		flags    uint32
		from, to string
		want     fuse.Status
	}{
		{unix.RENAME_WHITEOUT, "file", "x", fuse.EINVAL},
		{unix.RENAME_NOREPLACE | unix.RENAME_EXCHANGE, "file", "x", fuse.EINVAL},
		{1 << 5, "file", "x", fuse.EINVAL},
		{0, "file", ".wh.x", fuse.EPERM},
		{0, "missing", "x", fuse.ENOENT},
		{unix.RENAME_NOREPLACE, "file", "child", fuse.Status(syscall.EEXIST)},
		{unix.RENAME_EXCHANGE, "file", "child", fuse.OK},
		{0, "other", "child", fuse.OK},
		{unix.RENAME_NOREPLACE, "file", "moved", fuse.OK},
	} {
		if st := rename(tt.flags, tt.from, tt.to); st != tt.want {
			t.Errorf("rename %s to %s flags %#x = %v, want %v", tt.from, tt.to, tt.flags, st, tt.want)
		}
	}
	// After the exchange, /file is the old dir/child, which then moved to dir/moved; dir/child is other.
	for name, want := range map[string]overlay.Node{"child": other.attr.Node, "moved": fx.dirChild.attr.Node} {
		var out fuse.EntryOut
		if st := fx.fsys.Lookup(nil, &fuse.InHeader{NodeId: uint64(fx.dir)}, name, &out); st != fuse.OK || out.NodeId != uint64(want) {
			t.Errorf("lookup dir/%s = %v, node %d, want %d", name, st, out.NodeId, want)
		}
	}
}

func TestSetAttr(t *testing.T) {
	t.Parallel()
	fx := newWriteFixture(t)
	node := fx.file.attr.Node
	setattr := func(in fuse.SetAttrIn) (fuse.AttrOut, fuse.Status) {
		in.NodeId = uint64(node)
		var out fuse.AttrOut
		return out, fx.fsys.SetAttr(nil, &in, &out)
	}
	var in fuse.SetAttrIn
	in.Valid, in.Mode, in.Uid, in.Gid = fuse.FATTR_MODE|fuse.FATTR_UID|fuse.FATTR_GID, syscall.S_IFREG|0o4711, 7, 8
	if out, st := setattr(in); st != fuse.OK || out.Mode != syscall.S_IFREG|0o4711 || out.Uid != 7 || out.Gid != 8 || out.AttrValid == 0 {
		t.Errorf("chmod+chown = %v, mode %o owner %d:%d", st, out.Mode, out.Uid, out.Gid)
	}
	in = fuse.SetAttrIn{}
	in.Valid, in.Size = fuse.FATTR_SIZE, 4
	if out, st := setattr(in); st != fuse.OK || out.Size != 4 {
		t.Errorf("truncate = %v, size %d", st, out.Size)
	}
	// Truncating through a handle open for writing goes to that handle's file.
	fh := fx.open(t, node, syscall.O_RDWR)
	in.Valid, in.Size, in.Fh = fuse.FATTR_SIZE|fuse.FATTR_FH, 2, fh
	if out, st := setattr(in); st != fuse.OK || out.Size != 2 {
		t.Errorf("ftruncate = %v, size %d", st, out.Size)
	}
	if got := fx.read(t, fh); got != "01" {
		t.Errorf("after truncation: %q", got)
	}
	// Truncating through a handle changes nothing else: the view is not asked to.
	fx.v.failNext = errors.New("SetAttr must not be called")
	if out, st := setattr(in); st != fuse.OK || out.Size != 2 {
		t.Errorf("ftruncate again = %v, size %d", st, out.Size)
	}
	fx.v.failNext = nil
	in = fuse.SetAttrIn{}
	in.Valid, in.Mtime, in.Mtimensec = fuse.FATTR_MTIME|fuse.FATTR_ATIME, 1_000_000_000, 42
	if out, st := setattr(in); st != fuse.OK || out.Mtime != 1_000_000_000 || out.Mtimensec != 42 {
		t.Errorf("utimens = %v, mtime %d.%d", st, out.Mtime, out.Mtimensec)
	}
	before := time.Now().Add(-time.Second).Unix()
	in.Valid = fuse.FATTR_MTIME | fuse.FATTR_MTIME_NOW
	if out, st := setattr(in); st != fuse.OK || int64(out.Mtime) < before {
		t.Errorf("utimens(UTIME_NOW) = %v, mtime %d", st, out.Mtime)
	}
	in.Valid, in.Size = fuse.FATTR_SIZE, 1<<63
	if _, st := setattr(in); st != fuse.Status(syscall.EFBIG) {
		t.Errorf("truncate to 2^63 = %v", st)
	}
	fx.v.failNext = &os.PathError{Op: "truncate", Path: "/upper/file", Err: syscall.ENOSPC}
	in.Valid, in.Size = fuse.FATTR_SIZE, 100
	if _, st := setattr(in); st != fuse.Status(syscall.ENOSPC) {
		t.Errorf("setattr with the upper dir full = %v, want ENOSPC", st)
	}
}

func TestWriteAppendSync(t *testing.T) {
	t.Parallel()
	fx := newWriteFixture(t)
	node := fx.file.attr.Node
	ro := fx.open(t, node, syscall.O_RDONLY) // opened before the writes: sees them
	fh := fx.open(t, node, syscall.O_WRONLY)
	fx.write(t, fh, 2, 0, "ab")
	fx.write(t, fh, 0, syscall.O_APPEND, "END") // the offset does not count
	fx.write(t, fh, 15, 0, "x")                 // past the end: a hole of zeros
	if got, want := fx.read(t, ro), "01ab456789END\x00\x00x"; got != want {
		t.Errorf("content %q, want %q", got, want)
	}
	if _, st := fx.fsys.Write(nil, &fuse.WriteIn{Fh: ro}, []byte("x")); st != fuse.EBADF {
		t.Errorf("write on a read-only handle = %v, want EBADF", st)
	}
	if _, st := fx.fsys.Write(nil, &fuse.WriteIn{Fh: 999}, []byte("x")); st != fuse.EBADF {
		t.Errorf("write on no handle = %v, want EBADF", st)
	}
	// Writev writes the pieces in order.
	if n, st := fx.fsys.Writev(nil, &fuse.WriteIn{Fh: fh, Offset: 0}, [][]byte{[]byte("A"), []byte("BC")}); st != fuse.OK || n != 3 {
		t.Errorf("writev = %d, %v", n, st)
	}
	if got := fx.read(t, ro); got[:4] != "ABCb" {
		t.Errorf("after writev: %q", got)
	}
	fx.write(t, fh, 0, syscall.O_DSYNC, "s")
	if s := fx.v.fileSyncs.Load(); s != 1 {
		t.Errorf("O_DSYNC write: %d syncs", s)
	}
	if st := fx.fsys.Fsync(nil, &fuse.FsyncIn{InHeader: hdr(node), Fh: fh}); st != fuse.OK || fx.v.fileSyncs.Load() != 2 {
		t.Errorf("fsync = %v, %d file syncs", st, fx.v.fileSyncs.Load())
	}
	// A handle for reading cannot sync its file: the view syncs everything.
	if st := fx.fsys.Fsync(nil, &fuse.FsyncIn{InHeader: hdr(node), Fh: ro}); st != fuse.OK || fx.v.syncs.Load() != 1 {
		t.Errorf("fsync of a read-only handle = %v, %d syncs", st, fx.v.syncs.Load())
	}
	// Nothing is ever left to write back on close: FLUSH is answered ENOSYS, so the kernel stops sending it.
	if st := fx.fsys.Flush(nil, &fuse.FlushIn{Fh: fh}); st != fuse.ENOSYS || fx.v.syncs.Load() != 1 || fx.v.fileSyncs.Load() != 2 {
		t.Errorf("flush = %v (%d syncs, %d file syncs), want ENOSYS and no sync", st, fx.v.syncs.Load(), fx.v.fileSyncs.Load())
	}
	fx.fsys.Release(nil, &fuse.ReleaseIn{Fh: fh})
	fx.fsys.Release(nil, &fuse.ReleaseIn{Fh: ro})
	if c := fx.v.closes.Load(); c != 1 {
		t.Errorf("%d closes, want 1 (the read-only file cannot be closed)", c)
	}
	if n := fx.fsys.files.len(); n != 0 {
		t.Errorf("%d handles left", n)
	}
	// O_TRUNC (sent by kernels that negotiated atomic truncation) empties the file.
	fh = fx.open(t, node, syscall.O_WRONLY|syscall.O_TRUNC)
	if got := fx.read(t, fh); got != "" {
		t.Errorf("after O_TRUNC: %q", got)
	}
	if st := fx.fsys.Open(nil, &fuse.OpenIn{InHeader: hdr(fx.dir), Flags: syscall.O_RDWR}, &fuse.OpenOut{}); st != fuse.Status(syscall.EISDIR) {
		t.Errorf("open of a directory for writing = %v", st)
	}
}

func TestWritableXattrs(t *testing.T) {
	t.Parallel()
	fx := newWriteFixture(t)
	node := fx.file.attr.Node
	h := hdr(node)
	set := func(name, value string, flags uint32) fuse.Status {
		return fx.fsys.SetXAttr(nil, &fuse.SetXAttrIn{InHeader: h, Size: uint32(len(value)), Flags: flags}, name, []byte(value))
	}
	for _, tt := range []struct {
		name, value string
		flags       uint32
		want        fuse.Status
	}{
		{"user.a", "1", 0, fuse.OK},
		{"user.a", "2", unix.XATTR_CREATE, fuse.Status(syscall.EEXIST)},
		{"user.b", "2", unix.XATTR_REPLACE, fuse.ENODATA},
		{"user.a", "3", unix.XATTR_REPLACE, fuse.OK},
		{"user.b", "4", unix.XATTR_CREATE, fuse.OK},
	} {
		if st := set(tt.name, tt.value, tt.flags); st != tt.want {
			t.Errorf("setxattr %s flags %d = %v, want %v", tt.name, tt.flags, st, tt.want)
		}
	}
	buf := make([]byte, 64)
	if n, st := fx.fsys.GetXAttr(nil, &h, "user.a", buf); st != fuse.OK || string(buf[:n]) != "3" {
		t.Errorf("getxattr = %q, %v", buf[:n], st)
	}
	if st := fx.fsys.RemoveXAttr(nil, &h, "user.a"); st != fuse.OK {
		t.Errorf("removexattr = %v", st)
	}
	if st := fx.fsys.RemoveXAttr(nil, &h, "user.a"); st != fuse.ENODATA {
		t.Errorf("removexattr of a missing name = %v, want ENODATA", st)
	}
	if n, st := fx.fsys.ListXAttr(nil, &h, buf); st != fuse.OK || string(buf[:n]) != "user.b\x00" {
		t.Errorf("listxattr = %q, %v", buf[:n], st)
	}
	fx.v.failNext = nil
	gone := fuse.InHeader{NodeId: 777}
	if st := fx.fsys.SetXAttr(nil, &fuse.SetXAttrIn{InHeader: gone}, "user.a", nil); st != fuse.ENODATA && st != fuse.ENOENT {
		t.Errorf("setxattr on a missing node = %v", st)
	}
}

func TestWritableMisc(t *testing.T) {
	t.Parallel()
	fx := newWriteFixture(t)
	node := fx.file.attr.Node
	if st := fx.fsys.Tmpfile(nil, &fuse.CreateIn{InHeader: hdr(overlay.Root)}, &fuse.CreateOut{}); st != fuse.Status(syscall.EOPNOTSUPP) {
		t.Errorf("tmpfile = %v", st)
	}
	if st := fx.fsys.Fallocate(nil, &fuse.FallocateIn{InHeader: hdr(node)}); st != fuse.Status(syscall.EOPNOTSUPP) {
		t.Errorf("fallocate = %v", st)
	}
	if _, st := fx.fsys.CopyFileRange(nil, &fuse.CopyFileRangeIn{InHeader: hdr(node)}); st != fuse.ENOSYS {
		t.Errorf("copy_file_range = %v, want ENOSYS (the kernel copies itself)", st)
	}
	if st := fx.fsys.Access(nil, &fuse.AccessIn{InHeader: hdr(node), Mask: unix.W_OK}); st != fuse.OK {
		t.Errorf("access(W_OK) = %v", st)
	}
	if st := fx.fsys.FsyncDir(nil, &fuse.FsyncIn{InHeader: hdr(overlay.Root)}); st != fuse.OK || fx.v.syncs.Load() != 1 {
		t.Errorf("fsyncdir = %v, %d syncs of the view", st, fx.v.syncs.Load())
	}
	var want unix.Statfs_t
	if err := unix.Statfs(fx.fsys.upperDir, &want); err != nil {
		t.Fatal(err)
	}
	var out fuse.StatfsOut
	h := hdr(overlay.Root)
	if st := fx.fsys.StatFs(nil, &h, &out); st != fuse.OK || out.Blocks != want.Blocks || out.Files != want.Files ||
		out.Bsize != uint32(want.Bsize) || out.NameLen != 255 || out.Bavail == 0 {
		t.Errorf("statfs = %v %+v, upper dir %+v", st, out, want)
	}
	fx.fsys.upperDir = "/nonexistent/upper"
	if st := fx.fsys.StatFs(nil, &h, &out); st != fuse.ENOENT {
		t.Errorf("statfs of a missing upper dir = %v", st)
	}
	// Errors of the upper directory reach the caller as they are.
	for errno, op := range map[syscall.Errno]func() fuse.Status{
		syscall.ENOSPC: func() fuse.Status {
			return fx.fsys.Mkdir(nil, &fuse.MkdirIn{InHeader: hdr(overlay.Root)}, "x", &fuse.EntryOut{})
		},
		syscall.EDQUOT: func() fuse.Status { _, st := fx.create(t, overlay.Root, "y", syscall.O_RDWR); return st },
		syscall.EIO:    func() fuse.Status { h := hdr(overlay.Root); return fx.fsys.Unlink(nil, &h, "file") },
	} {
		fx.v.failNext = fmt.Errorf("doing it: %w", &os.PathError{Op: "op", Path: "/upper/x", Err: errno})
		if errno == syscall.EIO {
			fx.v.failNext = fmt.Errorf("something odd")
		}
		if st := op(); st != fuse.Status(errno) {
			t.Errorf("%v from the view = %v", errno, st)
		}
	}
}

func TestGetAttrRemovedOpenDir(t *testing.T) {
	t.Parallel()
	fx := newWriteFixture(t)
	var oo fuse.OpenOut
	if st := fx.fsys.OpenDir(nil, &fuse.OpenIn{InHeader: hdr(fx.dir)}, &oo); st != fuse.OK {
		t.Fatal(st)
	}
	// The view forgets the directory, as a real one does once it is removed.
	fx.v.mu.Lock()
	delete(fx.v.nodes, fx.dir)
	fx.v.mu.Unlock()
	var ao fuse.AttrOut
	if st := fx.fsys.GetAttr(nil, &fuse.GetAttrIn{InHeader: hdr(fx.dir)}, &ao); st != fuse.OK || ao.Nlink != 0 ||
		ao.Mode != syscall.S_IFDIR|0o755 || ao.Ino != uint64(fx.dir) {
		t.Errorf("fstat of a removed open dir = %v, mode %o nlink %d ino %d", st, ao.Mode, ao.Nlink, ao.Ino)
	}
	fx.fsys.ReleaseDir(&fuse.ReleaseIn{Fh: oo.Fh})
	if st := fx.fsys.GetAttr(nil, &fuse.GetAttrIn{InHeader: hdr(fx.dir)}, &ao); st != fuse.ENOENT {
		t.Errorf("getattr of a removed dir, closed = %v", st)
	}
}

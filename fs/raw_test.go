package fs

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

func newTestFS(t testing.TB) (*fileSystem[*fakeDir], *fixture) {
	t.Helper()
	fx, err := newFixture(filepath.Join(t.TempDir(), "backing"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fx.spliced.file.Close() })
	return newFileSystem(fx.v, Options{}), fx
}

func hdr(n overlay.Node) fuse.InHeader { return fuse.InHeader{NodeId: uint64(n)} }

func TestErrno(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{overlay.ErrNotExist, syscall.ENOENT},
		{iofs.ErrNotExist, syscall.ENOENT},
		{fmt.Errorf("looking up x: %w", overlay.ErrNotExist), syscall.ENOENT},
		{fmt.Errorf("a: %w", fmt.Errorf("b: %w", overlay.ErrNotDir)), syscall.ENOTDIR},
		{fmt.Errorf("open: %w", overlay.ErrIsDir), syscall.EISDIR},
		{fmt.Errorf("x: %w", overlay.ErrInvalid), syscall.EINVAL},
		{fmt.Errorf("reading: %w", context.Canceled), syscall.EINTR},
		{fmt.Errorf("create: %w", overlay.ErrExist), syscall.EEXIST},
		{iofs.ErrExist, syscall.EEXIST},
		{fmt.Errorf("rmdir: %w", overlay.ErrNotEmpty), syscall.ENOTEMPTY},
		{fmt.Errorf("x: %w", overlay.ErrReadOnly), syscall.EROFS},
		{fmt.Errorf("create .wh.x: %w", overlay.ErrReservedName), syscall.EPERM},
		{fmt.Errorf("rename: %w", overlay.ErrCrossDevice), syscall.EXDEV},
		// An error of the upper directory passes through as it is, also when it matches a sentinel.
		{fmt.Errorf("copy-up: %w", &iofs.PathError{Op: "write", Path: "/up/x", Err: syscall.ENOSPC}), syscall.ENOSPC},
		{&iofs.PathError{Op: "open", Path: "/up/x", Err: syscall.EACCES}, syscall.EACCES},
		{&iofs.PathError{Op: "mkdir", Path: "/up/x", Err: syscall.EEXIST}, syscall.EEXIST},
		{fmt.Errorf("x: %w", syscall.Errno(0)), syscall.EIO},
		{errors.New("disk on fire"), syscall.EIO},
		{io.ErrUnexpectedEOF, syscall.EIO},
	} {
		if got := Errno(tt.err); got != tt.want {
			t.Errorf("Errno(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestLookupAttr(t *testing.T) {
	t.Parallel()
	fsys, fx := newTestFS(t)
	for _, tt := range []struct {
		parent overlay.Node
		name   string
		node   overlay.Node
		mode   uint32
		nlink  uint32
		size   uint64
		blocks uint64
		rdev   uint32
		mtime  int64
		nsec   uint32
	}{
		{overlay.Root, "dir", fx.dir, syscall.S_IFDIR | 0o755, 2, dirSize, 8, 0, fakeMtime, 123456789},
		{overlay.Root, "file", fx.file.attr.Node, syscall.S_IFREG | 0o644, 2, 13, 1, 0, fakeMtime, 123456789},
		{fx.dir, "hardlink", fx.file.attr.Node, syscall.S_IFREG | 0o644, 2, 13, 1, 0, fakeMtime, 123456789},
		{overlay.Root, "empty", fx.empty.attr.Node, syscall.S_IFREG | 0o644, 1, 0, 0, 0, fakeMtime, 123456789},
		{overlay.Root, "link", fx.link.attr.Node, syscall.S_IFLNK | 0o777, 1, uint64(len("dir/sub/../../file")), 0, 0, fakeMtime, 123456789},
		{overlay.Root, "null", fx.chr.attr.Node, syscall.S_IFCHR | 0o600, 1, 0, 0, uint32(unix.Mkdev(1, 3)), fakeMtime, 123456789},
		{overlay.Root, "loop", fx.blk.attr.Node, syscall.S_IFBLK | 0o600, 1, 0, 0, uint32(unix.Mkdev(259, 1<<19+5)), fakeMtime, 123456789},
		{overlay.Root, "fifo", fx.fifo.attr.Node, syscall.S_IFIFO | 0o644, 1, 0, 0, 0, -86400, 5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out fuse.EntryOut
			h := hdr(tt.parent)
			if st := fsys.Lookup(nil, &h, tt.name, &out); st != fuse.OK {
				t.Fatalf("Lookup = %v", st)
			}
			if out.NodeId != uint64(tt.node) || out.Ino != uint64(tt.node) || out.Generation != generation {
				t.Errorf("NodeId %d Ino %d Generation %d, want node %d", out.NodeId, out.Ino, out.Generation, tt.node)
			}
			if out.EntryTimeout() != ReadOnlyTimeout || out.AttrTimeout() != ReadOnlyTimeout {
				t.Errorf("timeouts %v %v", out.EntryTimeout(), out.AttrTimeout())
			}
			checkAttr(t, &out.Attr, tt.mode, tt.nlink, tt.size, tt.blocks, tt.rdev, tt.mtime, tt.nsec)

			var ao fuse.AttrOut
			in := fuse.GetAttrIn{InHeader: hdr(tt.node)}
			if st := fsys.GetAttr(nil, &in, &ao); st != fuse.OK {
				t.Fatalf("GetAttr = %v", st)
			}
			if ao.Attr != out.Attr || ao.Timeout() != ReadOnlyTimeout {
				t.Errorf("GetAttr %+v (timeout %v), Lookup %+v", ao.Attr, ao.Timeout(), out.Attr)
			}
		})
	}
}

func checkAttr(t *testing.T, a *fuse.Attr, mode, nlink uint32, size, blocks uint64, rdev uint32, mtime int64, nsec uint32) {
	t.Helper()
	if a.Mode != mode || a.Nlink != nlink || a.Size != size || a.Blocks != blocks || a.Rdev != rdev {
		t.Errorf("mode %o nlink %d size %d blocks %d rdev %#x, want %o %d %d %d %#x",
			a.Mode, a.Nlink, a.Size, a.Blocks, a.Rdev, mode, nlink, size, blocks, rdev)
	}
	for _, ts := range [][2]uint64{{a.Atime, uint64(a.Atimensec)}, {a.Mtime, uint64(a.Mtimensec)}, {a.Ctime, uint64(a.Ctimensec)}} {
		if int64(ts[0]) != mtime || uint32(ts[1]) != nsec {
			t.Errorf("time %d.%09d, want %d.%09d", int64(ts[0]), ts[1], mtime, nsec)
		}
	}
	if a.Blksize != blockSize || a.Uid != 1000 && a.Ino != uint64(overlay.Root) || a.Gid != 100 && a.Ino != uint64(overlay.Root) {
		t.Errorf("blksize %d uid %d gid %d", a.Blksize, a.Uid, a.Gid)
	}
}

func TestLookupErrors(t *testing.T) {
	t.Parallel()
	fsys, fx := newTestFS(t)
	fx.v.add(overlay.Root, "broken", index.TypeRegular, 0o644).failErr = errors.New("corrupt table")
	fx.v.add(overlay.Root, "weird", index.Type(99), 0o644)
	for _, tt := range []struct {
		parent overlay.Node
		name   string
		want   fuse.Status
	}{
		{overlay.Root, "missing", fuse.OK}, // a negative entry, node 0
		{fx.file.attr.Node, "x", fuse.ENOTDIR},
		{overlay.Root, "broken", fuse.EIO},
		{overlay.Root, "weird", fuse.EIO},
		{overlay.Node(99 << 32), "x", fuse.OK}, // unknown parent: not there either
	} {
		var out fuse.EntryOut
		out.NodeId = 12345
		h := hdr(tt.parent)
		if st := fsys.Lookup(nil, &h, tt.name, &out); st != tt.want {
			t.Errorf("Lookup(%d, %q) = %v, want %v", tt.parent, tt.name, st, tt.want)
		}
		if tt.want == fuse.OK && (out.NodeId != 0 || out.EntryTimeout() != ReadOnlyTimeout) {
			t.Errorf("negative entry: NodeId %d, timeout %v", out.NodeId, out.EntryTimeout())
		}
	}
	var ao fuse.AttrOut
	in := fuse.GetAttrIn{InHeader: hdr(overlay.Node(77 << 32))}
	if st := fsys.GetAttr(nil, &in, &ao); st != fuse.ENOENT {
		t.Errorf("GetAttr of unknown node = %v", st)
	}
}

func TestTimeouts(t *testing.T) {
	t.Parallel()
	fx, err := newFixture("")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ entry, attr, wantEntry, wantAttr time.Duration }{
		{0, 0, ReadOnlyTimeout, ReadOnlyTimeout}, // a read-only view never changes
		{time.Second, 1500 * time.Millisecond, time.Second, 1500 * time.Millisecond},
		{-1, -1, 0, 0},
	} {
		fsys := newFileSystem(fx.v, Options{EntryTimeout: tt.entry, AttrTimeout: tt.attr})
		var out fuse.EntryOut
		h := hdr(overlay.Root)
		if st := fsys.Lookup(nil, &h, "file", &out); st != fuse.OK {
			t.Fatal(st)
		}
		if out.EntryTimeout() != tt.wantEntry || out.AttrTimeout() != tt.wantAttr {
			t.Errorf("options %v/%v: timeouts %v/%v, want %v/%v", tt.entry, tt.attr,
				out.EntryTimeout(), out.AttrTimeout(), tt.wantEntry, tt.wantAttr)
		}
	}
	// A writable view changes: it keeps DefaultTimeout.
	if fsys := newFileSystem(newFakeWView(), Options{}); fsys.entryTimeout != DefaultTimeout || fsys.attrTimeout != DefaultTimeout {
		t.Errorf("writable view: timeouts %v/%v, want %v", fsys.entryTimeout, fsys.attrTimeout, DefaultTimeout)
	}
}

func TestReadlink(t *testing.T) {
	t.Parallel()
	fsys, fx := newTestFS(t)
	h := hdr(fx.link.attr.Node)
	got, st := fsys.Readlink(nil, &h)
	if st != fuse.OK || string(got) != "dir/sub/../../file" {
		t.Errorf("Readlink = %q, %v", got, st)
	}
	h = hdr(fx.file.attr.Node)
	if _, st := fsys.Readlink(nil, &h); st != fuse.EINVAL {
		t.Errorf("Readlink of a file = %v, want EINVAL", st)
	}
}

func TestXattrs(t *testing.T) {
	t.Parallel()
	fsys, fx := newTestFS(t)
	h := hdr(fx.file.attr.Node)
	for _, tt := range []struct {
		name    string
		bufSize int
		want    string
		n       uint32
		st      fuse.Status
	}{
		{"user.comment", 0, "", 9, fuse.OK}, // size probe
		{"user.comment", 100, "a comment", 9, fuse.OK},
		{"user.comment", 9, "a comment", 9, fuse.OK},
		{"user.comment", 8, "", 9, fuse.ERANGE},
		{"security.capability", 64, string(capNetBindService), 20, fuse.OK},
		{"user.missing", 100, "", 0, fuse.Status(syscall.ENODATA)},
		{"user.missing", 0, "", 0, fuse.Status(syscall.ENODATA)},
	} {
		buf := make([]byte, tt.bufSize)
		n, st := fsys.GetXAttr(nil, &h, tt.name, buf)
		if st != tt.st || n != tt.n || st == fuse.OK && tt.bufSize > 0 && string(buf[:n]) != tt.want {
			t.Errorf("GetXAttr(%q, %d) = %d %v %q, want %d %v %q", tt.name, tt.bufSize, n, st, buf[:min(int(n), len(buf))], tt.n, tt.st, tt.want)
		}
	}
	const list = "user.comment\x00security.capability\x00"
	for _, tt := range []struct {
		bufSize int
		n       uint32
		st      fuse.Status
	}{{0, uint32(len(list)), fuse.OK}, {len(list), uint32(len(list)), fuse.OK}, {len(list) - 1, uint32(len(list)), fuse.ERANGE}} {
		buf := make([]byte, tt.bufSize)
		n, st := fsys.ListXAttr(nil, &h, buf)
		if n != tt.n || st != tt.st || st == fuse.OK && tt.bufSize > 0 && string(buf[:n]) != list {
			t.Errorf("ListXAttr(%d) = %d %v %q", tt.bufSize, n, st, buf)
		}
	}
	h = hdr(fx.dir)
	if n, st := fsys.ListXAttr(nil, &h, nil); n != 0 || st != fuse.OK {
		t.Errorf("ListXAttr of a node without xattrs = %d %v", n, st)
	}
}

func TestOpenRead(t *testing.T) {
	t.Parallel()
	fsys, fx := newTestFS(t)
	for _, flags := range []uint32{syscall.O_WRONLY, syscall.O_RDWR, syscall.O_RDONLY | syscall.O_TRUNC} {
		var out fuse.OpenOut
		if st := fsys.Open(nil, &fuse.OpenIn{InHeader: hdr(fx.file.attr.Node), Flags: flags}, &out); st != fuse.EROFS {
			t.Errorf("Open(%#o) = %v, want EROFS", flags, st)
		}
	}
	var out fuse.OpenOut
	if st := fsys.Open(nil, &fuse.OpenIn{InHeader: hdr(fx.dir)}, &out); st != fuse.EISDIR {
		t.Errorf("Open(dir) = %v, want EISDIR", st)
	}

	for _, tt := range []struct {
		name string
		n    *fakeNode
		want []byte
	}{
		{"readat", fx.file, fx.file.data},
		{"bounded", fx.big, []byte("0123456789")},
		{"empty", fx.empty, nil},
		{"splice", fx.spliced, fx.splicedData},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out fuse.OpenOut
			if st := fsys.Open(nil, &fuse.OpenIn{InHeader: hdr(tt.n.attr.Node), Flags: syscall.O_RDONLY}, &out); st != fuse.OK {
				t.Fatalf("Open = %v", st)
			}
			if out.OpenFlags&fuse.FOPEN_KEEP_CACHE == 0 || out.Fh == 0 {
				t.Errorf("OpenOut %+v", out)
			}
			read := func(off uint64, size uint32) []byte {
				t.Helper()
				buf := make([]byte, size)
				in := &fuse.ReadIn{InHeader: hdr(tt.n.attr.Node), Fh: out.Fh, Offset: off, Size: size}
				res, st := fsys.Read(nil, in, buf)
				if st != fuse.OK {
					t.Fatalf("Read(%d, %d) = %v", off, size, st)
				}
				if res.Size() > int(size) {
					t.Errorf("Read(%d, %d): result of %d bytes", off, size, res.Size())
				}
				b, st := res.Bytes(make([]byte, size))
				if st != fuse.OK {
					t.Fatalf("Bytes = %v", st)
				}
				return b
			}
			var got []byte
			for off := uint64(0); ; {
				b := read(off, 4096)
				if len(b) == 0 {
					break
				}
				got = append(got, b...)
				off += uint64(len(b))
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("read %d bytes %.40q..., want %d bytes", len(got), got, len(tt.want))
			}
			end := uint64(len(tt.want))
			if b := read(end, 4096); len(b) != 0 {
				t.Errorf("read at end: %q", b)
			}
			if b := read(end+1000, 4096); len(b) != 0 {
				t.Errorf("read past end: %q", b)
			}
			if end > 3 {
				if b := read(end-3, 4096); !bytes.Equal(b, tt.want[end-3:]) {
					t.Errorf("read across the end: %q", b)
				}
			}
			fsys.Release(nil, &fuse.ReleaseIn{InHeader: hdr(tt.n.attr.Node), Fh: out.Fh})
			in := &fuse.ReadIn{InHeader: hdr(tt.n.attr.Node), Fh: out.Fh, Size: 10}
			if _, st := fsys.Read(nil, in, make([]byte, 10)); st != fuse.EBADF {
				t.Errorf("Read after Release = %v, want EBADF", st)
			}
		})
	}
	if n := fsys.files.len(); n != 0 {
		t.Errorf("%d handles left open", n)
	}
}

// TestReadFileRangeIsData checks that a file lying in a range of another file is read with ReadAt and
// answered as data, complete: never as a go-fuse file-descriptor result, which go-fuse splices with one
// splice(2) call that may move less than asked (the kernel then takes the short reply for end of file).
func TestReadFileRangeIsData(t *testing.T) {
	t.Parallel()
	fsys, fx := newTestFS(t)
	var out fuse.OpenOut
	if st := fsys.Open(nil, &fuse.OpenIn{InHeader: hdr(fx.spliced.attr.Node)}, &out); st != fuse.OK {
		t.Fatal(st)
	}
	defer fsys.Release(nil, &fuse.ReleaseIn{Fh: out.Fh})
	in := &fuse.ReadIn{InHeader: hdr(fx.spliced.attr.Node), Fh: out.Fh, Offset: 100, Size: 4096}
	res, st := fsys.Read(nil, in, make([]byte, 4096))
	if st != fuse.OK {
		t.Fatal(st)
	}
	if _, ok := res.(interface {
		Seekable() (fd uintptr, off int64, sz int)
	}); ok {
		t.Fatalf("Read returned %T, a file-descriptor result", res)
	}
	want := min(4096, int(fx.spliced.attr.Size)-100)
	if res.Size() != want {
		t.Errorf("read %d bytes at 100, want %d", res.Size(), want)
	}
}

// dirent is one parsed entry of a READDIR or READDIRPLUS reply.
type dirent struct {
	name  string
	ino   uint64
	off   uint64
	typ   uint32
	entry fuse.EntryOut
}

const direntHeader = 24 // ino, off, namelen, type

// parseDirents decodes a reply the way the kernel does.
func parseDirents(t testing.TB, b []byte, plus bool) []dirent {
	t.Helper()
	var out []dirent
	for len(b) > 0 {
		var d dirent
		if plus {
			if err := binary.Read(bytes.NewReader(b), binary.LittleEndian, &d.entry); err != nil {
				t.Fatal(err)
			}
			b = b[binary.Size(d.entry):]
		}
		d.ino = binary.LittleEndian.Uint64(b)
		d.off = binary.LittleEndian.Uint64(b[8:])
		nameLen := int(binary.LittleEndian.Uint32(b[16:]))
		d.typ = binary.LittleEndian.Uint32(b[20:])
		d.name = string(b[direntHeader : direntHeader+nameLen])
		rec := (direntHeader + nameLen + 7) &^ 7
		b = b[rec:]
		out = append(out, d)
	}
	return out
}

// listDir lists directory n as the kernel would: OPENDIR, then READDIR(PLUS) requests of bufSize
// bytes, each resuming at the offset of the last entry received, then RELEASEDIR. It returns the
// entries and the number of requests.
func listDir(t testing.TB, fsys *fileSystem[*fakeDir], n overlay.Node, plus bool, bufSize int, start uint64) ([]dirent, int) {
	t.Helper()
	var oo fuse.OpenOut
	if st := fsys.OpenDir(nil, &fuse.OpenIn{InHeader: hdr(n)}, &oo); st != fuse.OK {
		t.Fatalf("OpenDir = %v", st)
	}
	defer fsys.ReleaseDir(&fuse.ReleaseIn{InHeader: hdr(n), Fh: oo.Fh})
	var all []dirent
	requests := 0
	buf := make([]byte, bufSize)
	for off := start; ; requests++ {
		l := fuse.NewDirEntryList(buf, off)
		in := &fuse.ReadIn{InHeader: hdr(n), Fh: oo.Fh, Offset: off, Size: uint32(bufSize)}
		var st fuse.Status
		if plus {
			st = fsys.ReadDirPlus(nil, in, l)
		} else {
			st = fsys.ReadDir(nil, in, l)
		}
		if st != fuse.OK {
			t.Fatalf("readdir at %d = %v", off, st)
		}
		ents := parseDirents(t, l.Bytes(), plus)
		if len(ents) == 0 {
			return all, requests
		}
		all = append(all, ents...)
		off = ents[len(ents)-1].off
	}
}

func TestReadDir(t *testing.T) {
	t.Parallel()
	fsys, fx := newTestFS(t)
	want := []string{".", "..", "big", "dir", "empty", "fifo", "file", "link", "loop", "null", "spliced"}
	for _, plus := range []bool{false, true} {
		t.Run(fmt.Sprintf("plus=%v", plus), func(t *testing.T) {
			ents, _ := listDir(t, fsys, overlay.Root, plus, 200, 0) // a few entries per request
			var names []string
			for i, e := range ents {
				names = append(names, e.name)
				if e.off != uint64(i+1) {
					t.Errorf("%s: offset %d, want %d", e.name, e.off, i+1)
				}
				a, err := fx.v.Lookup(overlay.Root, e.name)
				switch {
				case e.name == "." || e.name == "..":
					if e.ino != uint64(overlay.Root) || e.typ != syscall.DT_DIR || e.entry.NodeId != 0 {
						t.Errorf("%s: ino %d type %d node %d", e.name, e.ino, e.typ, e.entry.NodeId)
					}
				case err != nil:
					t.Fatal(err)
				default:
					mode, _ := typeMode(a.Type)
					if e.ino != uint64(a.Node) || e.typ != mode>>12 {
						t.Errorf("%s: ino %d type %d, want %d %d", e.name, e.ino, e.typ, a.Node, mode>>12)
					}
					if plus {
						var le fuse.EntryOut
						h := hdr(overlay.Root)
						fsys.Lookup(nil, &h, e.name, &le)
						if e.entry != le {
							t.Errorf("%s: READDIRPLUS entry %+v, LOOKUP %+v", e.name, e.entry, le)
						}
					}
				}
			}
			if !slices.Equal(names, want) {
				t.Errorf("names %q, want %q", names, want)
			}
			// Resuming anywhere gives the rest, as seekdir(3) needs.
			rest, _ := listDir(t, fsys, overlay.Root, plus, 4096, 5)
			if len(rest) != len(want)-5 || rest[0].name != want[5] {
				t.Errorf("from offset 5: %v", rest)
			}
		})
	}
	var oo fuse.OpenOut
	if st := fsys.OpenDir(nil, &fuse.OpenIn{InHeader: hdr(fx.file.attr.Node)}, &oo); st != fuse.ENOTDIR {
		t.Errorf("OpenDir(file) = %v", st)
	}
	// A directory that cannot be listed fails at its first READDIR.
	fx.v.nodes[fx.sub].failErr = errors.New("corrupt layer")
	var so fuse.OpenOut
	if st := fsys.OpenDir(nil, &fuse.OpenIn{InHeader: hdr(fx.sub)}, &so); st != fuse.EIO {
		t.Errorf("OpenDir(broken) = %v, want EIO", st)
	}
	fx.v.nodes[fx.sub].failErr = nil
	if st := fsys.OpenDir(nil, &fuse.OpenIn{InHeader: hdr(fx.sub)}, &so); st != fuse.OK {
		t.Fatalf("OpenDir(sub) = %v", st)
	}
	fx.v.nodes[fx.sub].failErr = errors.New("corrupt layer")
	in := &fuse.ReadIn{InHeader: hdr(fx.sub), Fh: so.Fh, Size: 4096}
	if st := fsys.ReadDir(nil, in, fuse.NewDirEntryList(make([]byte, 4096), 0)); st != fuse.EIO {
		t.Errorf("ReadDir(broken) = %v, want EIO", st)
	}
	fsys.ReleaseDir(&fuse.ReleaseIn{Fh: so.Fh})
	fx.v.nodes[fx.sub].failErr = nil
	sub, _ := listDir(t, fsys, fx.dir, false, 4096, 0)
	if len(sub) != 4 || sub[1].name != ".." || sub[1].ino != fuse.FUSE_UNKNOWN_INO {
		t.Errorf("listing of dir: %+v", sub)
	}
	if n := fsys.dirs.len(); n != 0 {
		t.Errorf("%d directory handles left open", n)
	}
}

func TestReadDirSkipsInvalidNames(t *testing.T) {
	t.Parallel()
	v := newFakeView()
	for _, name := range []string{"a", "b/c", "nul\x00", "", ".", "..", "z"} {
		v.add(overlay.Root, name, index.TypeRegular, 0o644)
	}
	fsys := newFileSystem(v, Options{})
	for _, plus := range []bool{false, true} {
		ents, _ := listDir(t, fsys, overlay.Root, plus, 4096, 0)
		var names []string
		for _, e := range ents {
			names = append(names, e.name)
		}
		if want := []string{".", "..", "a", "z"}; !slices.Equal(names, want) {
			t.Errorf("plus=%v: names %q, want %q", plus, names, want)
		}
	}
}

func TestReadDirPlusLarge(t *testing.T) {
	t.Parallel()
	const n = 100_000
	v := newFakeView()
	big := v.dir(overlay.Root, "big")
	for i := range n {
		v.add(big, fmt.Sprintf("f%06d", i), index.TypeRegular, 0o644)
	}
	fsys := newFileSystem(v, Options{})
	v.attrCalls.Store(0)
	ents, requests := listDir(t, fsys, big, true, 4096, 0)
	if len(ents) != n+2 {
		t.Fatalf("%d entries, want %d", len(ents), n+2)
	}
	for i, e := range ents[2:] {
		if want := fmt.Sprintf("f%06d", i); e.name != want || e.entry.NodeId == 0 {
			t.Fatalf("entry %d: %q node %d, want %q", i, e.name, e.entry.NodeId, want)
		}
	}
	// Each entry costs one Attr, plus one for each request's entry that did not fit: no rescans.
	if calls := v.attrCalls.Load(); calls > int64(n+requests) {
		t.Errorf("%d Attr calls for %d entries in %d requests", calls, n, requests)
	}
}

func TestStatFs(t *testing.T) {
	t.Parallel()
	fsys, _ := newTestFS(t)
	var out fuse.StatfsOut
	h := hdr(overlay.Root)
	if st := fsys.StatFs(nil, &h, &out); st != fuse.OK || out.NameLen != 255 || out.Bsize != blockSize || out.Blocks != 0 {
		t.Errorf("StatFs = %v %+v", st, out)
	}
	fsysU := newFileSystem(usageView{newFakeView()}, Options{})
	if st := fsysU.StatFs(nil, &h, &out); st != fuse.OK || out.Blocks != 3 || out.Files != 7 || out.Bfree != 0 {
		t.Errorf("StatFs with usage = %v %+v", st, out)
	}
}

type usageView struct{ *fakeView }

func (usageView) Usage() (int64, int64) { return 2*blockSize + 1, 7 }

func TestReadOnly(t *testing.T) {
	t.Parallel()
	fsys, fx := newTestFS(t)
	checkReadOnly(t, fsys, fx.file.attr.Node)
	// A view that could change but says it cannot is served read-only too.
	v := newFakeWView()
	v.readOnly = true
	f := v.file(overlay.Root, "file", []byte("data"))
	checkReadOnly(t, newFileSystem(v, Options{}), f.attr.Node)
}

// checkReadOnly checks that every change to fsys fails with EROFS, and that reads work.
func checkReadOnly(t *testing.T, fsys *fileSystem[*fakeDir], node overlay.Node) {
	t.Helper()
	h := hdr(overlay.Root)
	for name, st := range map[string]fuse.Status{
		"setattr":     fsys.SetAttr(nil, &fuse.SetAttrIn{}, &fuse.AttrOut{}),
		"mknod":       fsys.Mknod(nil, &fuse.MknodIn{}, "x", &fuse.EntryOut{}),
		"mkdir":       fsys.Mkdir(nil, &fuse.MkdirIn{}, "x", &fuse.EntryOut{}),
		"unlink":      fsys.Unlink(nil, &h, "file"),
		"rmdir":       fsys.Rmdir(nil, &h, "dir"),
		"rename":      fsys.Rename(nil, &fuse.RenameIn{}, "file", "x"),
		"link":        fsys.Link(nil, &fuse.LinkIn{Oldnodeid: uint64(node)}, "x", &fuse.EntryOut{}),
		"symlink":     fsys.Symlink(nil, &h, "target", "x", &fuse.EntryOut{}),
		"setxattr":    fsys.SetXAttr(nil, &fuse.SetXAttrIn{}, "user.x", []byte("y")),
		"removexattr": fsys.RemoveXAttr(nil, &h, "user.comment"),
		"create":      fsys.Create(nil, &fuse.CreateIn{}, "x", &fuse.CreateOut{}),
		"tmpfile":     fsys.Tmpfile(nil, &fuse.CreateIn{}, &fuse.CreateOut{}),
		"fallocate":   fsys.Fallocate(nil, &fuse.FallocateIn{}),
		"access-w":    fsys.Access(nil, &fuse.AccessIn{InHeader: hdr(node), Mask: unix.W_OK}),
		"open-w":      fsys.Open(nil, &fuse.OpenIn{InHeader: hdr(node), Flags: syscall.O_WRONLY}, &fuse.OpenOut{}),
		"open-trunc":  fsys.Open(nil, &fuse.OpenIn{InHeader: hdr(node), Flags: syscall.O_TRUNC}, &fuse.OpenOut{}),
	} {
		if st != fuse.EROFS {
			t.Errorf("%s = %v, want EROFS", name, st)
		}
	}
	if _, st := fsys.Write(nil, &fuse.WriteIn{}, []byte("x")); st != fuse.EROFS {
		t.Errorf("write = %v", st)
	}
	if _, st := fsys.Writev(nil, &fuse.WriteIn{}, [][]byte{[]byte("x")}); st != fuse.EROFS {
		t.Errorf("writev = %v", st)
	}
	if _, st := fsys.CopyFileRange(nil, &fuse.CopyFileRangeIn{}); st != fuse.EROFS {
		t.Errorf("copy_file_range = %v", st)
	}
	if st := fsys.Access(nil, &fuse.AccessIn{InHeader: hdr(node), Mask: unix.R_OK | unix.X_OK}); st != fuse.OK {
		t.Errorf("access r = %v", st)
	}
	var oo fuse.OpenOut
	if st := fsys.Open(nil, &fuse.OpenIn{InHeader: hdr(node), Flags: syscall.O_RDONLY}, &oo); st != fuse.OK || oo.OpenFlags&fuse.FOPEN_KEEP_CACHE == 0 {
		t.Errorf("open for reading = %v, flags %#x: want FOPEN_KEEP_CACHE", st, oo.OpenFlags)
	}
	fsys.Release(nil, &fuse.ReleaseIn{Fh: oo.Fh})
	fsys.Forget(uint64(node), 1) // a no-op: the node still answers
	var ao fuse.AttrOut
	if st := fsys.GetAttr(nil, &fuse.GetAttrIn{InHeader: hdr(node)}, &ao); st != fuse.OK {
		t.Errorf("GetAttr after Forget = %v", st)
	}
}

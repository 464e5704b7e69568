package fs

import (
	"bytes"
	"slices"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/imgfs/imgfs/overlay"
)

// TestNoOpen checks a read-only file system that lets the kernel open files itself: OPEN is answered
// ENOSYS (writes still EROFS), and READ and LSEEK without a handle read the node's own file, bounded
// as through a handle.
func TestNoOpen(t *testing.T) {
	fsys, fx := newTestFS(t)
	fsys.noOpen = true
	var out fuse.OpenOut
	if st := fsys.Open(nil, &fuse.OpenIn{InHeader: hdr(fx.file.attr.Node), Flags: syscall.O_RDONLY}, &out); st != fuse.ENOSYS {
		t.Errorf("Open for reading = %v, want ENOSYS", st)
	}
	if st := fsys.Open(nil, &fuse.OpenIn{InHeader: hdr(fx.file.attr.Node), Flags: syscall.O_WRONLY}, &out); st != fuse.EROFS {
		t.Errorf("Open for writing = %v, want EROFS", st)
	}
	for _, tt := range []struct {
		n    *fakeNode
		want []byte
	}{
		{fx.file, fx.file.data},
		{fx.big, []byte("0123456789")}, // its reader holds more than its size
		{fx.empty, nil},
		{fx.spliced, fx.splicedData},
	} {
		var got []byte
		for off := uint64(0); ; {
			buf := make([]byte, 4096)
			res, st := fsys.Read(nil, &fuse.ReadIn{InHeader: hdr(tt.n.attr.Node), Offset: off, Size: 4096}, buf)
			if st != fuse.OK {
				t.Fatalf("Read(%d) = %v", off, st)
			}
			b, _ := res.Bytes(buf)
			if len(b) == 0 {
				break
			}
			got = append(got, b...)
			off += uint64(len(b))
		}
		if !bytes.Equal(got, tt.want) {
			t.Errorf("node %d: read %d bytes, want %d", tt.n.attr.Node, len(got), len(tt.want))
		}
	}
	var so fuse.LseekOut
	if st := fsys.Lseek(nil, &fuse.LseekIn{InHeader: hdr(fx.file.attr.Node), Offset: 3, Whence: unix.SEEK_HOLE}, &so); st != fuse.OK || so.Offset != uint64(len(fx.file.data)) {
		t.Errorf("Lseek(SEEK_HOLE) = %v, %d", st, so.Offset)
	}
	if _, st := fsys.Read(nil, &fuse.ReadIn{InHeader: hdr(fx.dir), Size: 10}, make([]byte, 10)); st != fuse.EISDIR {
		t.Errorf("Read of a directory = %v, want EISDIR", st)
	}
	// A handle that does not exist is still one.
	if _, st := fsys.Read(nil, &fuse.ReadIn{InHeader: hdr(fx.file.attr.Node), Fh: 99, Size: 10}, make([]byte, 10)); st != fuse.EBADF {
		t.Errorf("Read of handle 99 = %v, want EBADF", st)
	}
	// Without noOpen, a request without a handle has none.
	fsys.noOpen = false
	if _, st := fsys.Read(nil, &fuse.ReadIn{InHeader: hdr(fx.file.attr.Node), Size: 10}, make([]byte, 10)); st != fuse.EBADF {
		t.Errorf("Read without a handle = %v, want EBADF", st)
	}
}

// TestNoOpenDir checks a read-only file system that lets the kernel open directories itself:
// OPENDIR is answered ENOSYS, and READDIR and READDIRPLUS without a handle list the same entries as
// through a handle, resuming where a request stopped, from one snapshot for the whole listing.
func TestNoOpenDir(t *testing.T) {
	v := newFakeView()
	big := v.dir(overlay.Root, "big")
	for i := range 500 {
		v.file(big, "file-"+string(rune('a'+i%26))+string(rune('a'+i/26)), nil)
	}
	fsys := newFileSystem(v, Options{})
	want, _ := listDir(t, fsys, big, true, 4096, 0)

	fsys.noOpenDir = true
	var out fuse.OpenOut
	if st := fsys.OpenDir(nil, &fuse.OpenIn{InHeader: hdr(big)}, &out); st != fuse.ENOSYS {
		t.Fatalf("OpenDir = %v, want ENOSYS", st)
	}
	for _, plus := range []bool{false, true} {
		calls := v.readDirCalls.Load()
		var got []dirent
		for off := uint64(0); ; {
			l := fuse.NewDirEntryList(make([]byte, 2048), off)
			if st := fsys.readDir(&fuse.ReadIn{InHeader: hdr(big), Offset: off}, l, plus); st != fuse.OK {
				t.Fatalf("readDir(plus %v, %d) = %v", plus, off, st)
			}
			ds := parseDirents(t, l.Bytes(), plus)
			if len(ds) == 0 {
				break
			}
			got = append(got, ds...)
			off = ds[len(ds)-1].off
		}
		if !slices.EqualFunc(got, want, func(a, b dirent) bool { return a.name == b.name && a.ino == b.ino && a.off == b.off }) {
			t.Errorf("plus %v: %d entries, want %d as through a handle", plus, len(got), len(want))
		}
		if n := v.readDirCalls.Load() - calls; n > 1 {
			t.Errorf("plus %v: the view listed the directory %d times, want at most once", plus, n)
		}
		if n := fsys.snapshot.len(); n != 0 {
			t.Errorf("plus %v: %d snapshots kept after the end of the listing, want 0", plus, n)
		}
	}
	l := fuse.NewDirEntryList(make([]byte, 2048), 0)
	if st := fsys.readDir(&fuse.ReadIn{InHeader: hdr(big), Fh: 7}, l, false); st != fuse.EBADF {
		t.Errorf("readDir of handle 7 = %v, want EBADF", st)
	}
}

// TestNoXattrs checks that a read-only view without extended attributes answers GETXATTR with ENOSYS
// (the kernel then answers every getxattr itself) and still lists none.
func TestNoXattrs(t *testing.T) {
	v := newFakeView()
	f := v.file(overlay.Root, "f", []byte("x"))
	fsys := newFileSystem(xattrView{v}, Options{})
	fsys.noXattrs = true
	h := hdr(f.attr.Node)
	if _, st := fsys.GetXAttr(nil, &h, "security.selinux", make([]byte, 255)); st != fuse.ENOSYS {
		t.Errorf("GetXAttr = %v, want ENOSYS", st)
	}
	if n, st := fsys.ListXAttr(nil, &h, nil); n != 0 || st != fuse.OK {
		t.Errorf("ListXAttr = %d, %v", n, st)
	}
	if (xattrView{v}).HasXattrs() {
		t.Fatal("the view reports xattrs")
	}
}

// closeCounter is an overlay.File that counts its closes.
type closeCounter struct {
	overlay.File
	closes *int
}

func (c closeCounter) Close() error { *c.closes++; return nil }

// TestNodeFiles checks the table of files opened by node: a file is opened once while it is in the
// table, and closed once, when it has left the table and no request uses it.
func TestNodeFiles(t *testing.T) {
	v := newFakeView()
	var nodes []overlay.Node
	for range byNodeSlots + 2 {
		nodes = append(nodes, v.file(overlay.Root, "f"+string(rune('a'+len(nodes))), []byte("data")).attr.Node)
	}
	opens, closes := map[overlay.Node]int{}, 0
	open := func(n overlay.Node) (overlay.File, error) {
		opens[n]++
		f, err := v.Open(n)
		return closeCounter{f, &closes}, err
	}
	var tbl nodeFiles
	held, err := tbl.get(nodes[0], open) // in use while it leaves the table
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[:byNodeSlots] {
		nf, err := tbl.get(n, open)
		if err != nil {
			t.Fatal(err)
		}
		tbl.put(nf)
	}
	if opens[nodes[0]] != 1 || closes != 0 {
		t.Errorf("node 0 opened %d times, %d closes; want 1 and 0", opens[nodes[0]], closes)
	}
	for _, n := range nodes[byNodeSlots:] {
		nf, _ := tbl.get(n, open)
		tbl.put(nf)
	}
	if closes != 1 {
		t.Errorf("%d closes after two files left the table, want 1 (node 0 is in use)", closes)
	}
	tbl.put(held)
	if closes != 2 {
		t.Errorf("%d closes after the last use of node 0, want 2", closes)
	}
	if _, err := tbl.get(overlay.Node(1<<40), open); err == nil {
		t.Error("get of a node that does not exist succeeded")
	}
	tbl.closeAll()
	if closes != byNodeSlots+2 {
		t.Errorf("%d closes after closeAll, want every file opened (%d)", closes, byNodeSlots+2)
	}
}

// TestNodeDirsBudget checks that the snapshots kept for listings without a handle stay within
// byNodeSlots and snapshotBudget entries, the newest always kept.
func TestNodeDirsBudget(t *testing.T) {
	var tbl nodeDirs[*fakeDir]
	read := func(n int) func(overlay.Node) (*fakeDir, error) {
		return func(overlay.Node) (*fakeDir, error) { return &fakeDir{entries: make([]overlay.DirEntry, n)}, nil }
	}
	for i := range byNodeSlots + 3 {
		if _, err := tbl.get(overlay.Node(100+i), read(10)); err != nil {
			t.Fatal(err)
		}
	}
	if n := tbl.len(); n != byNodeSlots {
		t.Errorf("%d snapshots kept, want %d", n, byNodeSlots)
	}
	if _, err := tbl.get(1, read(snapshotBudget-5)); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, nd := range tbl.slots {
		if nd != nil {
			total += nd.dir.Len()
		}
	}
	if total > snapshotBudget || tbl.len() == 0 {
		t.Errorf("%d snapshots of %d entries kept, want the newest within %d", tbl.len(), total, snapshotBudget)
	}
	calls := 0
	if _, err := tbl.get(1, func(overlay.Node) (*fakeDir, error) { calls++; return nil, nil }); err != nil || calls != 0 {
		t.Errorf("the newest snapshot was taken again (%d calls, %v)", calls, err)
	}
	if _, err := tbl.get(2, read(snapshotBudget+1)); err != nil || tbl.len() != 1 {
		t.Errorf("a snapshot past the budget: %d kept, %v; want it alone", tbl.len(), err)
	}
}

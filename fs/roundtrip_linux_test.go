package fs

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

// recorder counts the requests that reach a RawFileSystem, by opcode name, and passes them on.
type recorder struct {
	fuse.RawFileSystem
	mu sync.Mutex
	n  map[string]int
}

func (r *recorder) count(op string) {
	r.mu.Lock()
	r.n[op]++
	r.mu.Unlock()
}

// take returns the counts since the last take and starts again from zero.
func (r *recorder) take() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.n
	r.n = map[string]int{}
	return n
}

func (r *recorder) Lookup(c <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	r.count("LOOKUP")
	return r.RawFileSystem.Lookup(c, h, name, out)
}

func (r *recorder) Forget(node, n uint64) {
	r.count("FORGET")
	r.RawFileSystem.Forget(node, n)
}

func (r *recorder) GetAttr(c <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	r.count("GETATTR")
	return r.RawFileSystem.GetAttr(c, in, out)
}

func (r *recorder) SetAttr(c <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	r.count("SETATTR")
	return r.RawFileSystem.SetAttr(c, in, out)
}

func (r *recorder) Mknod(c <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	r.count("MKNOD")
	return r.RawFileSystem.Mknod(c, in, name, out)
}

func (r *recorder) Mkdir(c <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	r.count("MKDIR")
	return r.RawFileSystem.Mkdir(c, in, name, out)
}

func (r *recorder) Unlink(c <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	r.count("UNLINK")
	return r.RawFileSystem.Unlink(c, h, name)
}

func (r *recorder) Rmdir(c <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	r.count("RMDIR")
	return r.RawFileSystem.Rmdir(c, h, name)
}

func (r *recorder) Rename(c <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	r.count("RENAME")
	return r.RawFileSystem.Rename(c, in, oldName, newName)
}

func (r *recorder) Link(c <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	r.count("LINK")
	return r.RawFileSystem.Link(c, in, name, out)
}

func (r *recorder) Symlink(c <-chan struct{}, h *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	r.count("SYMLINK")
	return r.RawFileSystem.Symlink(c, h, target, name, out)
}

func (r *recorder) Readlink(c <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	r.count("READLINK")
	return r.RawFileSystem.Readlink(c, h)
}

func (r *recorder) Access(c <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	r.count("ACCESS")
	return r.RawFileSystem.Access(c, in)
}

func (r *recorder) GetXAttr(c <-chan struct{}, h *fuse.InHeader, name string, dest []byte) (uint32, fuse.Status) {
	r.count("GETXATTR")
	return r.RawFileSystem.GetXAttr(c, h, name, dest)
}

func (r *recorder) ListXAttr(c <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	r.count("LISTXATTR")
	return r.RawFileSystem.ListXAttr(c, h, dest)
}

func (r *recorder) SetXAttr(c <-chan struct{}, in *fuse.SetXAttrIn, name string, data []byte) fuse.Status {
	r.count("SETXATTR")
	return r.RawFileSystem.SetXAttr(c, in, name, data)
}

func (r *recorder) RemoveXAttr(c <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	r.count("REMOVEXATTR")
	return r.RawFileSystem.RemoveXAttr(c, h, name)
}

func (r *recorder) Create(c <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	r.count("CREATE")
	return r.RawFileSystem.Create(c, in, name, out)
}

func (r *recorder) Tmpfile(c <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	r.count("TMPFILE")
	return r.RawFileSystem.Tmpfile(c, in, out)
}

func (r *recorder) Open(c <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	r.count("OPEN")
	return r.RawFileSystem.Open(c, in, out)
}

func (r *recorder) Read(c <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	r.count("READ")
	return r.RawFileSystem.Read(c, in, buf)
}

func (r *recorder) Lseek(c <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	r.count("LSEEK")
	return r.RawFileSystem.Lseek(c, in, out)
}

func (r *recorder) GetLk(c <-chan struct{}, in *fuse.LkIn, out *fuse.LkOut) fuse.Status {
	r.count("GETLK")
	return r.RawFileSystem.GetLk(c, in, out)
}

func (r *recorder) SetLk(c <-chan struct{}, in *fuse.LkIn) fuse.Status {
	r.count("SETLK")
	return r.RawFileSystem.SetLk(c, in)
}

func (r *recorder) SetLkw(c <-chan struct{}, in *fuse.LkIn) fuse.Status {
	r.count("SETLKW")
	return r.RawFileSystem.SetLkw(c, in)
}

func (r *recorder) Release(c <-chan struct{}, in *fuse.ReleaseIn) {
	r.count("RELEASE")
	r.RawFileSystem.Release(c, in)
}

func (r *recorder) Write(c <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	r.count("WRITE")
	return r.RawFileSystem.Write(c, in, data)
}

func (r *recorder) Writev(c <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	r.count("WRITE")
	return r.RawFileSystem.Writev(c, in, data)
}

func (r *recorder) CopyFileRange(c <-chan struct{}, in *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	r.count("COPY_FILE_RANGE")
	return r.RawFileSystem.CopyFileRange(c, in)
}

func (r *recorder) Ioctl(c <-chan struct{}, in *fuse.IoctlIn, inbuf []byte, out *fuse.IoctlOut, outbuf []byte) fuse.Status {
	r.count("IOCTL")
	return r.RawFileSystem.Ioctl(c, in, inbuf, out, outbuf)
}

func (r *recorder) Flush(c <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	r.count("FLUSH")
	return r.RawFileSystem.Flush(c, in)
}

func (r *recorder) Fsync(c <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	r.count("FSYNC")
	return r.RawFileSystem.Fsync(c, in)
}

func (r *recorder) Fallocate(c <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	r.count("FALLOCATE")
	return r.RawFileSystem.Fallocate(c, in)
}

func (r *recorder) OpenDir(c <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	r.count("OPENDIR")
	return r.RawFileSystem.OpenDir(c, in, out)
}

func (r *recorder) ReadDir(c <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	r.count("READDIR")
	return r.RawFileSystem.ReadDir(c, in, out)
}

func (r *recorder) ReadDirPlus(c <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	r.count("READDIRPLUS")
	return r.RawFileSystem.ReadDirPlus(c, in, out)
}

func (r *recorder) ReleaseDir(in *fuse.ReleaseIn) {
	r.count("RELEASEDIR")
	r.RawFileSystem.ReleaseDir(in)
}

func (r *recorder) FsyncDir(c <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	r.count("FSYNCDIR")
	return r.RawFileSystem.FsyncDir(c, in)
}

func (r *recorder) StatFs(c <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	r.count("STATFS")
	return r.RawFileSystem.StatFs(c, h, out)
}

func (r *recorder) Statx(c <-chan struct{}, in *fuse.StatxIn, out *fuse.StatxOut) fuse.Status {
	r.count("STATX")
	return r.RawFileSystem.Statx(c, in, out)
}

// mountRecorded mounts fsys as Mount would, behind a recorder.
func mountRecorded[D Dir](t testing.TB, fsys *fileSystem[D]) (string, *recorder) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("no FUSE: %v", err)
	}
	rec := &recorder{RawFileSystem: fsys, n: map[string]int{}}
	mnt := t.TempDir()
	srv, err := serve(mnt, rec, fsys.writable(), fsys.log, Options{DirectMount: true, FsName: "imgfs-test"})
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		srv.Wait()
	})
	rec.take() // what the mount itself asked
	return mnt, rec
}

// xattrView is a fakeView that reports whether it has extended attributes (XattrReporter).
type xattrView struct{ *fakeView }

func (v xattrView) HasXattrs() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, n := range v.nodes {
		if len(n.xattrs) > 0 {
			return true
		}
	}
	return false
}

func (v xattrView) HasXattr(name string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, n := range v.nodes {
		for _, x := range n.xattrs {
			if x.Name == name {
				return true
			}
		}
	}
	return false
}

// walkFixture is a tree of small files in v: dirs directories of files files each, and one directory
// "flat" of flat files, which takes many READDIR requests.
type walkFixture struct {
	v       *fakeView
	dirs    int
	flat    int
	entries int               // below the root
	regular int               // regular files
	content map[string][]byte // by path under the root
}

func newWalkFixture(v *fakeView, dirs, files, flat int) *walkFixture {
	fx := &walkFixture{v: v, dirs: dirs, flat: flat, content: map[string][]byte{}}
	add := func(parent overlay.Node, dir, name string, i int) {
		data := bytes.Repeat([]byte(name+"\n"), 1+i%40) // up to ~0.5 KiB
		if i%50 == 0 {
			data = nil
		}
		v.file(parent, name, data)
		fx.content[dir+"/"+name] = data
	}
	for d := range dirs {
		name := fmt.Sprintf("d%03d", d)
		dn := v.dir(overlay.Root, name)
		for f := range files {
			add(dn, name, fmt.Sprintf("f%03d", f), d*files+f)
		}
	}
	fd := v.dir(overlay.Root, "flat")
	for f := range flat {
		add(fd, "flat", fmt.Sprintf("file-%07d", f), f)
	}
	fx.regular = dirs*files + flat
	fx.entries = fx.regular + dirs + 1
	return fx
}

// paths returns the fixture's regular files, sorted.
func (fx *walkFixture) paths() []string { return slices.Sorted(maps.Keys(fx.content)) }

// nonEmpty returns the number of regular files with data.
func (fx *walkFixture) nonEmpty() int {
	n := 0
	for _, d := range fx.content {
		if len(d) > 0 {
			n++
		}
	}
	return n
}

// run runs a shell pipeline in dir and returns its standard output.
func run(t *testing.T, dir, script string) string {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v: %s", script, err, stderr.Bytes())
	}
	return string(out)
}

// walk runs find -type f in mnt and checks that it lists the fixture's files.
func (fx *walkFixture) walk(t *testing.T, mnt string) {
	t.Helper()
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(run(t, mnt, "find . -type f")), "\n") {
		got = append(got, strings.TrimPrefix(l, "./"))
	}
	slices.Sort(got)
	if want := fx.paths(); !slices.Equal(got, want) {
		t.Fatalf("find: %d paths, want %d", len(got), len(want))
	}
}

// readAll reads every file in mnt with cat and checks the bytes.
func (fx *walkFixture) readAll(t *testing.T, mnt string) {
	t.Helper()
	got := run(t, mnt, "find . -type f -print0 | sort -z | xargs -0 cat")
	var want []byte
	for _, p := range fx.paths() {
		want = append(want, fx.content[p]...)
	}
	if got != string(want) {
		t.Fatalf("read every file: %d bytes, want %d", len(got), len(want))
	}
}

// lsL runs ls -l of the flat directory in mnt and checks the number of lines.
func (fx *walkFixture) lsL(t *testing.T, mnt string) {
	t.Helper()
	out := run(t, mnt, "ls -l flat")
	if n := strings.Count(out, "\n"); n != fx.flat+1 { // and the total line
		t.Fatalf("ls -l: %d lines, want %d", n, fx.flat+1)
	}
}

// bounds are the most requests of each opcode that an operation may cost; an opcode not listed may
// not appear at all.
type bounds map[string]int

func (b bounds) check(t *testing.T, what string, counts map[string]int) {
	t.Helper()
	t.Logf("%s:%s", what, show(counts))
	for _, op := range slices.Sorted(maps.Keys(counts)) {
		if limit, ok := b[op]; !ok || counts[op] > limit {
			t.Errorf("%s: %d %s requests, want at most %d", what, counts[op], op, limit)
		}
	}
}

func show(counts map[string]int) string {
	var b strings.Builder
	for _, op := range slices.Sorted(maps.Keys(counts)) {
		fmt.Fprintf(&b, " %s=%d", op, counts[op])
	}
	return b.String()
}

// TestRoundTrips counts the FUSE requests of a walk (find -type f), a read of every file and ls -l of
// a large directory on a read-only mount of small files without extended attributes, cold (the first
// time) and warm (again), and checks that the kernel does without what it can: no OPEN, FLUSH,
// RELEASE, OPENDIR, RELEASEDIR or GETXATTR past the first of each (answered ENOSYS), at most one
// LOOKUP per entry and one READ per file cold, and warm nothing but what the kernel may have evicted
// meanwhile under memory pressure (names, attributes, listings, pages: none on an idle machine, as
// the logged counts show). The outputs are checked against the fixture.
func TestRoundTrips(t *testing.T) {
	const dirs, files, flat = 20, 50, 3000
	// Listing a directory takes a request per buffer of entries, and one more that finds the end.
	const listings = 2*(dirs+2) + flat/10

	t.Run("walk-read-ls", func(t *testing.T) {
		fx := newWalkFixture(newFakeView(), dirs, files, flat)
		mnt, rec := mountRecorded(t, newFileSystem(xattrView{fx.v}, Options{}))
		// find asks statfs of the starting point.
		warm := bounds{"STATFS": 1, "LOOKUP": fx.entries, "GETATTR": fx.entries, "FORGET": fx.entries,
			"READDIR": listings, "READDIRPLUS": listings, "READ": fx.nonEmpty()}
		fx.walk(t, mnt)
		bounds{"LOOKUP": fx.entries, "OPENDIR": 1, "RELEASEDIR": 1, "READDIR": listings, "READDIRPLUS": listings,
			"GETATTR": 1, "GETXATTR": 1, "STATFS": 1}.check(t, "cold find -type f", rec.take())
		fx.walk(t, mnt)
		warm.check(t, "warm find -type f", rec.take())
		fx.readAll(t, mnt)
		bounds{"LOOKUP": fx.entries, "OPEN": 1, "FLUSH": 1, "RELEASE": 1, "READ": fx.nonEmpty(), "STATFS": 1}.check(t, "cold read every file", rec.take())
		fx.readAll(t, mnt)
		warm.check(t, "warm read every file", rec.take())
		fx.lsL(t, mnt)
		warm.check(t, "ls -l after the walk", rec.take())
		fx.lsL(t, mnt)
		warm.check(t, "warm ls -l", rec.take())
	})

	t.Run("ls-l-cold", func(t *testing.T) {
		fx := newWalkFixture(newFakeView(), 0, 0, flat)
		mnt, rec := mountRecorded(t, newFileSystem(xattrView{fx.v}, Options{}))
		fx.lsL(t, mnt)
		bounds{"LOOKUP": fx.flat + 1, "OPENDIR": 1, "RELEASEDIR": 1, "READDIR": listings, "READDIRPLUS": listings,
			"GETATTR": 1, "GETXATTR": 1}.check(t, "cold ls -l", rec.take())
		fx.lsL(t, mnt)
		bounds{"LOOKUP": fx.flat + 1, "GETATTR": fx.flat + 1, "FORGET": fx.flat + 1, "READDIR": listings,
			"READDIRPLUS": listings}.check(t, "warm ls -l", rec.take())
	})

	// With extended attributes in the view, getxattr reaches the server and the values are served.
	// Without security.selinux anywhere, that name is answered EOPNOTSUPP, and ls -l, which asks it of
	// every entry, stops at the first; with it, every entry is asked.
	for _, labeled := range []bool{false, true} {
		t.Run(fmt.Sprintf("xattrs-labeled-%v", labeled), func(t *testing.T) {
			fx := newWalkFixture(newFakeView(), 0, 0, 200)
			f := fx.v.file(overlay.Root, "tagged", []byte("x"))
			f.xattrs = []index.Xattr{{Name: "user.tag", Value: []byte("v")}}
			if labeled {
				f.xattrs = append(f.xattrs, index.Xattr{Name: selinuxXattr, Value: []byte("system_u:object_r:etc_t:s0")})
			}
			mnt, rec := mountRecorded(t, newFileSystem(xattrView{fx.v}, Options{}))
			buf := make([]byte, 64)
			if n, err := unix.Getxattr(filepath.Join(mnt, "tagged"), "user.tag", buf); err != nil || string(buf[:n]) != "v" {
				t.Fatalf("getxattr user.tag = %q, %v", buf[:max(n, 0)], err)
			}
			other := filepath.Join(mnt, "flat", "file-0000001")
			if _, err := unix.Getxattr(other, "user.tag", buf); err != unix.ENODATA {
				t.Errorf("getxattr user.tag of a file without it: %v, want ENODATA", err)
			}
			wantLabel := unix.EOPNOTSUPP
			if labeled {
				wantLabel = unix.ENODATA
				if n, err := unix.Getxattr(filepath.Join(mnt, "tagged"), selinuxXattr, buf); err != nil || n != len(f.xattrs[1].Value) {
					t.Errorf("getxattr %s of the labeled file = %d, %v", selinuxXattr, n, err)
				}
			}
			if _, err := unix.Getxattr(other, selinuxXattr, buf); err != wantLabel {
				t.Errorf("getxattr %s of a file without it: %v, want %v", selinuxXattr, err, wantLabel)
			}
			// The first ls -l also fetches each entry's ACL (ENODATA), which the kernel then keeps.
			rec.take()
			fx.lsL(t, mnt)
			cold := rec.take()
			fx.lsL(t, mnt)
			warm := rec.take()
			t.Logf("ls -l:%s; again:%s", show(cold), show(warm))
			if labeled && warm["GETXATTR"] < fx.flat {
				t.Errorf("warm ls -l asked %d GETXATTR, want one per entry (%d)", warm["GETXATTR"], fx.flat)
			}
			if !labeled && (cold["GETXATTR"] > fx.flat+2 || warm["GETXATTR"] > 1) {
				t.Errorf("ls -l asked %d GETXATTR, then %d; want at most one per entry (%d) and one for the label, then one",
					cold["GETXATTR"], warm["GETXATTR"], fx.flat+2)
			}
		})
	}

	// A writable mount opens files and directories as before (its files change), but sends no FLUSH
	// past the first.
	t.Run("writable", func(t *testing.T) {
		wv := newFakeWView()
		fx := newWalkFixture(wv.fakeView, 5, 20, 0)
		mnt, rec := mountRecorded(t, newFileSystem(wv, Options{}))
		fx.walk(t, mnt)
		rec.take()
		fx.readAll(t, mnt)
		c := rec.take()
		t.Logf("writable: read every file:%s", show(c))
		if c["OPEN"] < fx.regular || c["FLUSH"] > 1 {
			t.Errorf("writable read: %d OPEN, %d FLUSH; want one OPEN per file (%d) and at most one FLUSH", c["OPEN"], c["FLUSH"], fx.regular)
		}
	})
}

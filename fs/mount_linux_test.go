package fs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

// mountFS mounts fsys on a temporary directory for the test's duration. Without FUSE it skips, except in
// CI (CI set), where a missing FUSE is a failure.
func mountFS[D Dir](t testing.TB, fsys *fileSystem[D]) (string, *fuse.Server) {
	t.Helper()
	unavailable := t.Skipf
	if os.Getenv("CI") != "" {
		unavailable = t.Fatalf
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		unavailable("no FUSE: %v", err)
	}
	mnt := t.TempDir()
	srv, err := mount(mnt, fsys, Options{DirectMount: true, FsName: "imgfs-test"})
	if err != nil {
		unavailable("cannot mount: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		srv.Wait()
	})
	return mnt, srv
}

func mountFixture(t testing.TB) (string, *fixture, *fuse.Server) {
	t.Helper()
	fsys, fx := newTestFS(t)
	mnt, srv := mountFS(t, fsys)
	return mnt, fx, srv
}

func TestMountStat(t *testing.T) {
	t.Parallel()
	mnt, fx, _ := mountFixture(t)
	for _, tt := range []struct {
		path         string
		node         overlay.Node
		mode         uint32
		nlink        uint64
		size, blocks int64
		major, minor uint32
		sec, nsec    int64
	}{
		{"", overlay.Root, syscall.S_IFDIR | 0o755, 2, dirSize, 8, 0, 0, fakeMtime, 0},
		{"dir", fx.dir, syscall.S_IFDIR | 0o755, 2, dirSize, 8, 0, 0, fakeMtime, 123456789},
		{"dir/sub", fx.sub, syscall.S_IFDIR | 0o755, 2, dirSize, 8, 0, 0, fakeMtime, 123456789},
		{"file", fx.file.attr.Node, syscall.S_IFREG | 0o644, 2, 13, 1, 0, 0, fakeMtime, 123456789},
		{"dir/hardlink", fx.file.attr.Node, syscall.S_IFREG | 0o644, 2, 13, 1, 0, 0, fakeMtime, 123456789},
		{"empty", fx.empty.attr.Node, syscall.S_IFREG | 0o644, 1, 0, 0, 0, 0, fakeMtime, 123456789},
		{"link", fx.link.attr.Node, syscall.S_IFLNK | 0o777, 1, 18, 0, 0, 0, fakeMtime, 123456789},
		{"null", fx.chr.attr.Node, syscall.S_IFCHR | 0o600, 1, 0, 0, 1, 3, fakeMtime, 123456789},
		{"loop", fx.blk.attr.Node, syscall.S_IFBLK | 0o600, 1, 0, 0, 259, 1<<19 + 5, fakeMtime, 123456789},
		{"fifo", fx.fifo.attr.Node, syscall.S_IFIFO | 0o644, 1, 0, 0, 0, 0, -86400, 5},
	} {
		t.Run(tt.path, func(t *testing.T) {
			for range 2 { // the second time from the kernel's caches: the same answers
				var st unix.Stat_t
				if err := unix.Lstat(filepath.Join(mnt, tt.path), &st); err != nil {
					t.Fatal(err)
				}
				if st.Ino != uint64(tt.node) || st.Mode != tt.mode || st.Nlink != tt.nlink || st.Size != tt.size ||
					st.Blocks != tt.blocks || st.Blksize != blockSize {
					t.Errorf("ino %d mode %o nlink %d size %d blocks %d blksize %d, want %d %o %d %d %d %d",
						st.Ino, st.Mode, st.Nlink, st.Size, st.Blocks, st.Blksize, tt.node, tt.mode, tt.nlink, tt.size, tt.blocks, blockSize)
				}
				if unix.Major(st.Rdev) != tt.major || unix.Minor(st.Rdev) != tt.minor {
					t.Errorf("rdev %d:%d, want %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev), tt.major, tt.minor)
				}
				if tt.node != overlay.Root {
					for _, ts := range []unix.Timespec{st.Mtim, st.Ctim, st.Atim} {
						if ts.Sec != tt.sec || ts.Nsec != tt.nsec {
							t.Errorf("time %d.%09d, want %d.%09d", ts.Sec, ts.Nsec, tt.sec, tt.nsec)
						}
					}
					if st.Uid != 1000 || st.Gid != 100 {
						t.Errorf("owner %d:%d", st.Uid, st.Gid)
					}
				}
			}
		})
	}
	// statx asking for a birth time goes through FUSE_STATX, which is not implemented: the kernel must
	// fall back to GETATTR.
	var stx unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, filepath.Join(mnt, "file"), unix.AT_SYMLINK_NOFOLLOW, unix.STATX_ALL|unix.STATX_BTIME, &stx)
	if err != nil || stx.Ino != uint64(fx.file.attr.Node) || stx.Size != 13 {
		t.Errorf("statx: ino %d size %d, %v", stx.Ino, stx.Size, err)
	}
	// A missing name is remembered: the second stat does not reach the view.
	before := fx.v.lookupCalls.Load()
	for range 2 {
		if _, err := os.Lstat(filepath.Join(mnt, "missing")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stat of a missing name: %v", err)
		}
	}
	if calls := fx.v.lookupCalls.Load() - before; calls != 1 {
		t.Errorf("%d lookups for two stats of a missing name, want 1", calls)
	}
	if _, err := os.Lstat(filepath.Join(mnt, "file", "x")); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("stat below a file: %v", err)
	}
}

func TestMountOptions(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFixture(t)
	info, err := mountInfo(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if info == "" {
		t.Fatalf("%s not in mountinfo", mnt)
	}
	for _, want := range []string{" ro,", "nosuid", "nodev", " - fuse.imgfs imgfs-test ", "default_permissions"} {
		if !strings.Contains(info, want) {
			t.Errorf("mountinfo %q lacks %q", info, want)
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	if st.Namelen != 255 || st.Bsize != blockSize || st.Flags&unix.ST_RDONLY == 0 {
		t.Errorf("statfs %+v", st)
	}
	// As root, the connection's readahead is raised from the kernel's 128 KiB to maxRequest.
	if os.Geteuid() == 0 {
		var s unix.Stat_t
		if err := unix.Stat(mnt, &s); err != nil {
			t.Fatal(err)
		}
		ra, err := os.ReadFile(fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(s.Dev), unix.Minor(s.Dev)))
		if err != nil || strings.TrimSpace(string(ra)) != fmt.Sprint(maxRequest>>10) {
			t.Errorf("read_ahead_kb = %q, %v; want %d", ra, err, maxRequest>>10)
		}
	}
}

// mountInfo returns the line of /proc/self/mountinfo for mountpoint mnt, or "".
func mountInfo(mnt string) (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) > 4 && fields[4] == mnt {
			return s.Text(), nil
		}
	}
	return "", s.Err()
}

func TestMountReadlinkXattr(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFixture(t)
	if got, err := os.Readlink(filepath.Join(mnt, "link")); err != nil || got != "dir/sub/../../file" {
		t.Errorf("readlink = %q, %v", got, err)
	}
	file := filepath.Join(mnt, "file")
	if n, err := unix.Getxattr(file, "user.comment", nil); n != 9 || err != nil {
		t.Errorf("getxattr size probe = %d, %v", n, err)
	}
	buf := make([]byte, 64)
	if n, err := unix.Getxattr(file, "user.comment", buf); err != nil || string(buf[:n]) != "a comment" {
		t.Errorf("getxattr = %q, %v", buf[:max(n, 0)], err)
	}
	if n, err := unix.Getxattr(file, "security.capability", buf); err != nil || !bytes.Equal(buf[:n], capNetBindService) {
		t.Errorf("getxattr security.capability = %d, %v", n, err)
	}
	if _, err := unix.Getxattr(file, "user.comment", make([]byte, 3)); err != unix.ERANGE {
		t.Errorf("getxattr into a small buffer: %v, want ERANGE", err)
	}
	if _, err := unix.Getxattr(file, "user.missing", buf); err != unix.ENODATA {
		t.Errorf("getxattr of a missing name: %v, want ENODATA", err)
	}
	const list = "user.comment\x00security.capability\x00"
	if n, err := unix.Listxattr(file, nil); n != len(list) || err != nil {
		t.Errorf("listxattr size probe = %d, %v", n, err)
	}
	if n, err := unix.Listxattr(file, buf); err != nil || string(buf[:n]) != list {
		t.Errorf("listxattr = %q, %v", buf[:max(n, 0)], err)
	}
	if _, err := unix.Listxattr(file, make([]byte, 5)); err != unix.ERANGE {
		t.Errorf("listxattr into a small buffer: %v, want ERANGE", err)
	}
}

func TestMountRead(t *testing.T) {
	t.Parallel()
	mnt, fx, _ := mountFixture(t)
	for _, tt := range []struct {
		name string
		want []byte
	}{
		{"file", fx.file.data},
		{"dir/hardlink", fx.file.data},
		{"empty", nil},
		{"big", []byte("0123456789")},
		{"spliced", fx.splicedData},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(mnt, tt.name)
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Errorf("ReadFile = %d bytes, %v; want %d bytes", len(got), err, len(tt.want))
			}
			if bytes.Contains(got, []byte("TRAILER")) {
				t.Errorf("read shows the bytes after the file")
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			size := int64(len(tt.want))
			buf := make([]byte, 100)
			if n, err := f.ReadAt(buf, size); n != 0 || err != io.EOF {
				t.Errorf("read at the end: %d, %v", n, err)
			}
			if n, err := f.ReadAt(buf, size+12345); n != 0 || err != io.EOF {
				t.Errorf("read past the end: %d, %v", n, err)
			}
			if size >= 3 {
				n, err := f.ReadAt(buf, size-3)
				if n != 3 || err != io.EOF || !bytes.Equal(buf[:n], tt.want[size-3:]) {
					t.Errorf("read across the end: %q, %v", buf[:n], err)
				}
			}
		})
	}
}

func TestMountReadOnly(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFixture(t)
	file := filepath.Join(mnt, "file")
	for _, tt := range []struct {
		name string
		op   func() error
	}{
		{"open for writing", func() error {
			f, err := os.OpenFile(file, os.O_WRONLY, 0)
			if err == nil {
				f.Close()
			}
			return err
		}},
		{"create", func() error { return os.WriteFile(filepath.Join(mnt, "new"), nil, 0o644) }},
		{"truncate", func() error { return os.Truncate(file, 0) }},
		{"mkdir", func() error { return os.Mkdir(filepath.Join(mnt, "newdir"), 0o755) }},
		{"remove", func() error { return os.Remove(file) }},
		{"rmdir", func() error { return os.Remove(filepath.Join(mnt, "dir", "sub")) }},
		{"rename", func() error { return os.Rename(file, filepath.Join(mnt, "moved")) }},
		{"symlink", func() error { return os.Symlink("x", filepath.Join(mnt, "newlink")) }},
		{"link", func() error { return os.Link(file, filepath.Join(mnt, "newhard")) }},
		{"chmod", func() error { return os.Chmod(file, 0o600) }},
		{"chown", func() error { return os.Lchown(file, 1, 1) }},
		{"setxattr", func() error { return unix.Setxattr(file, "user.x", []byte("y"), 0) }},
		{"removexattr", func() error { return unix.Removexattr(file, "user.comment") }},
		{"mknod", func() error { return unix.Mknod(filepath.Join(mnt, "fifo2"), unix.S_IFIFO|0o644, 0) }},
	} {
		if err := tt.op(); !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s: %v, want EROFS", tt.name, err)
		}
	}
	if err := unix.Access(file, unix.W_OK); err != unix.EROFS {
		t.Errorf("access(W_OK): %v", err)
	}
}

func TestMountReadDirLarge(t *testing.T) {
	t.Parallel()
	const n = 100_000
	v := newFakeView()
	big := v.dir(overlay.Root, "big")
	for i := range n {
		v.add(big, fmt.Sprintf("%x", i*7919), index.TypeRegular, 0o644)
	}
	for try := range 3 { // for the READDIRPLUS check below
		small := v.dir(overlay.Root, fmt.Sprintf("small-%d", try))
		for i := range 1000 {
			v.add(small, fmt.Sprintf("%x", i*7919), index.TypeRegular, 0o644)
		}
	}
	mnt, _ := mountFS(t, newFileSystem(v, Options{}))
	f, err := os.Open(filepath.Join(mnt, "big"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1) // in the order the kernel gives them ("." and ".." dropped)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != n || !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != n {
		t.Errorf("%d names, sorted %v", len(names), slices.IsSorted(names))
	}
	// The kernel keeps the listing: listing again opens the directory but does not read it. The
	// kernel may drop the cached pages under memory pressure (other test binaries run beside this
	// one), so the listing is repeated a few times: without the cache every one of them reads.
	var calls int64
	for try := 0; try < 3; try++ {
		before := v.readDirCalls.Load()
		g, err := os.Open(filepath.Join(mnt, "big"))
		if err != nil {
			t.Fatal(err)
		}
		again, err := g.Readdirnames(-1)
		g.Close()
		if err != nil || len(again) != n {
			t.Errorf("second listing: %d names, %v", len(again), err)
		}
		if calls = v.readDirCalls.Load() - before; calls == 0 {
			break
		}
	}
	if calls != 0 {
		t.Errorf("listing again: %d ReadDir calls each time, want 0 (kernel cache)", calls)
	}
	// With the listing's attributes in hand the kernel answers stat without asking again. Under memory
	// pressure (other test binaries beside this one) the kernel may evict the entries of a big listing
	// before they are used, so this is checked on small directories listed just before, up to three
	// times: without READDIRPLUS's entries every attempt looks each name up.
	var lookups int64
	for try := range 3 {
		dir := filepath.Join(mnt, fmt.Sprintf("small-%d", try))
		listed, err := os.ReadDir(dir)
		if err != nil || len(listed) != 1000 {
			t.Fatalf("listing %s: %d entries, %v", dir, len(listed), err)
		}
		before := v.lookupCalls.Load()
		for _, e := range listed {
			if _, err := os.Lstat(filepath.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
		if lookups = v.lookupCalls.Load() - before; lookups == 0 {
			break
		}
	}
	if lookups != 0 {
		t.Errorf("%d lookups after READDIRPLUS", lookups)
	}
}

func TestMountUnmount(t *testing.T) {
	t.Parallel()
	fx, err := newFixture("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil && os.Getenv("CI") == "" {
		t.Skipf("no FUSE: %v", err)
	}
	mnt := t.TempDir()
	srv, err := Mount(mnt, fx.v, Options{DirectMount: true})
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("cannot mount: %v", err)
		}
		t.Fatal(err)
	}
	if _, err := os.ReadFile(filepath.Join(mnt, "file")); err != nil {
		t.Error(err)
	}
	if err := srv.Unmount(); err != nil {
		t.Fatalf("unmount: %v", err)
	}
	srv.Wait()
	if info, err := mountInfo(mnt); err != nil || info != "" {
		t.Errorf("still mounted: %q %v", info, err)
	}
}

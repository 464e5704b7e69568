package fs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

// dataContent is the content of the image's 100,000-byte file "data".
var dataContent = bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz\n"), 100_000/37+1)[:100_000]

// writeImage is the image below the writable mount of writeSuite: each test of the suite changes its
// own part of it.
var writeImage = []memMember{
	{"etc/passwd", index.TypeRegular, 0o644, "root:x:0:0\n"},
	{"bin/sh", index.TypeRegular, 0o755, "#!binary"},
	{"bin/bash", index.TypeHardlink, 0, "bin/sh"},
	{"data", index.TypeRegular, 0o644, string(dataContent)},
	{"hosts", index.TypeRegular, 0o644, "127.0.0.1 localhost\n"},
	{"trunc", index.TypeRegular, 0o644, "0123456789"},
	{"log", index.TypeRegular, 0o644, "aaa"},
	{"tree/a.txt", index.TypeRegular, 0o644, "aaa"},
	{"tree/b/c.txt", index.TypeRegular, 0o600, "ccc"},
	{"tree/b/d/e.txt", index.TypeRegular, 0o644, "eee"},
	{"tree/b/link", index.TypeSymlink, 0o777, "../a.txt"},
	{"gone/x", index.TypeRegular, 0o644, "x"},
	{"gone/y", index.TypeRegular, 0o644, "y"},
	{"attrs", index.TypeRegular, 0o644, "attrs"},
	{"dirs/full/f", index.TypeRegular, 0o644, "f"},
}

// fakeFromMembers returns a writable fake view holding members, all owned by 0:0.
func fakeFromMembers(members []memMember) *fakeWView {
	v := newFakeWView()
	dirs := map[string]overlay.Node{"": overlay.Root}
	var mkdir func(p string) overlay.Node
	mkdir = func(p string) overlay.Node {
		if n, ok := dirs[p]; ok {
			return n
		}
		n := v.dir(mkdir(parentDir(p)), path.Base(p))
		v.nodes[n].attr.UID, v.nodes[n].attr.GID = 0, 0
		dirs[p] = n
		return n
	}
	files := map[string]*fakeNode{}
	for _, m := range members {
		parent, name := mkdir(parentDir(m.path)), path.Base(m.path)
		var n *fakeNode
		switch m.typ {
		case index.TypeDir:
			mkdir(m.path)
			continue
		case index.TypeRegular:
			n = v.file(parent, name, []byte(m.data))
			n.attr.Mode = m.mode
			files[m.path] = n
		case index.TypeSymlink:
			n = v.symlink(parent, name, m.data)
			n.attr.Size = int64(len(m.data))
		case index.TypeHardlink:
			v.hardlink(parent, name, files[m.data].attr.Node)
			continue
		}
		n.attr.UID, n.attr.GID = 0, 0
	}
	return v
}

// TestMountWriteFake runs the writable mount suite on a fake view.
func TestMountWriteFake(t *testing.T) {
	v := fakeFromMembers(writeImage)
	mnt, _ := mountFS(t, newFileSystem(v, Options{UpperDir: t.TempDir()}))
	writeSuite(t, mnt)
	if v.truncs.Load() == 0 {
		t.Errorf("open(2) with O_TRUNC never reached OpenFile: the kernel truncated with SETATTR")
	}
	// A second mount of the view, whose kernel caches are cold, shows what the first one shows from
	// its caches.
	fresh, _ := mountFS(t, newFileSystem(v, Options{UpperDir: t.TempDir()}))
	compareTrees(t, mnt, fresh)
}

// writeSuite changes the tree writeImage through the writable mount at mnt and checks each change.
func writeSuite(t *testing.T, mnt string) {
	p := func(name string) string { return filepath.Join(mnt, name) }
	read := func(t *testing.T, name string) string {
		t.Helper()
		b, err := os.ReadFile(p(name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	stat := func(t *testing.T, name string) unix.Stat_t {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Lstat(p(name), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	list := func(t *testing.T, dir string) []string {
		t.Helper()
		ents, err := os.ReadDir(p(dir))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names
	}
	t.Run("mount", func(t *testing.T) {
		info, err := mountInfo(mnt)
		if err != nil || !strings.Contains(info, " rw,") || !strings.Contains(info, "nosuid") || !strings.Contains(info, "nodev") {
			t.Errorf("mountinfo %q, %v", info, err)
		}
		var st unix.Statfs_t
		if err := unix.Statfs(mnt, &st); err != nil || st.Flags&unix.ST_RDONLY != 0 || st.Bavail == 0 || st.Namelen != 255 {
			t.Errorf("statfs %+v, %v", st, err)
		}
	})
	t.Run("create", func(t *testing.T) {
		old := unix.Umask(0o022)
		defer unix.Umask(old)
		if err := os.WriteFile(p("new.txt"), []byte("hello"), 0o666); err != nil {
			t.Fatal(err)
		}
		if got := read(t, "new.txt"); got != "hello" {
			t.Errorf("read back %q", got)
		}
		st := stat(t, "new.txt")
		if st.Mode != syscall.S_IFREG|0o644 || st.Uid != uint32(os.Getuid()) || st.Gid != uint32(os.Getgid()) || st.Size != 5 || st.Nlink != 1 {
			t.Errorf("stat: mode %o owner %d:%d size %d nlink %d", st.Mode, st.Uid, st.Gid, st.Size, st.Nlink)
		}
		if _, err := os.OpenFile(p("new.txt"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); !errors.Is(err, syscall.EEXIST) {
			t.Errorf("O_EXCL on an existing file: %v", err)
		}
		for _, name := range []string{".wh.new", ".wh..wh..opq", "tree/.wh.a.txt"} {
			if err := os.WriteFile(p(name), nil, 0o644); !errors.Is(err, syscall.EPERM) {
				t.Errorf("create %s: %v, want EPERM", name, err)
			}
		}
		if err := os.Mkdir(p(".wh.dir"), 0o755); !errors.Is(err, syscall.EPERM) {
			t.Errorf("mkdir .wh.dir: %v, want EPERM", err)
		}
	})
	t.Run("write in the middle", func(t *testing.T) {
		f, err := os.OpenFile(p("data"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("XYZ"), 50_000); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		want := slices.Clone(dataContent)
		copy(want[50_000:], "XYZ")
		if got := read(t, "data"); got != string(want) {
			t.Errorf("data differs after a write in its middle (%d bytes)", len(got))
		}
	})
	t.Run("a reader sees a later write", func(t *testing.T) {
		r, err := os.Open(p("hosts"))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		buf := make([]byte, 64)
		if n, _ := r.ReadAt(buf, 0); string(buf[:n]) != "127.0.0.1 localhost\n" {
			t.Fatalf("hosts = %q", buf[:n])
		}
		w, err := os.OpenFile(p("hosts"), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.WriteAt([]byte("::1      localhost\n# more\n"), 0); err != nil {
			t.Fatal(err)
		}
		w.Close()
		n, _ := r.ReadAt(buf, 0)
		if got := string(buf[:n]); got != "::1      localhost\n# more\n" {
			t.Errorf("the reader opened before the write reads %q", got)
		}
	})
	t.Run("truncate", func(t *testing.T) {
		if err := os.Truncate(p("trunc"), 4); err != nil {
			t.Fatal(err)
		}
		if got := read(t, "trunc"); got != "0123" {
			t.Errorf("after truncate(4): %q", got)
		}
		f, err := os.OpenFile(p("trunc"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(6); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if got := read(t, "trunc"); got != "0123\x00\x00" {
			t.Errorf("after ftruncate(6): %q", got)
		}
		if err := os.WriteFile(p("etc/passwd"), []byte("new"), 0); err != nil { // O_TRUNC of a lower file
			t.Fatal(err)
		}
		if got := read(t, "etc/passwd"); got != "new" {
			t.Errorf("after O_TRUNC: %q", got)
		}
	})
	t.Run("append", func(t *testing.T) {
		f, err := os.OpenFile(p("log"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"+1", "+2"} {
			if _, err := f.WriteString(s); err != nil {
				t.Fatal(err)
			}
		}
		f.Close()
		if got := read(t, "log"); got != "aaa+1+2" {
			t.Errorf("after appends: %q", got)
		}
	})
	t.Run("mkdir and rmdir", func(t *testing.T) {
		if err := os.Mkdir(p("newdir"), 0o750); err != nil {
			t.Fatal(err)
		}
		if st := stat(t, "newdir"); st.Mode != syscall.S_IFDIR|0o750 {
			t.Errorf("mode %o", st.Mode)
		}
		if err := os.WriteFile(p("newdir/f"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := unix.Rmdir(p("newdir")); err != unix.ENOTEMPTY {
			t.Errorf("rmdir of a non-empty new dir: %v", err)
		}
		if err := unix.Rmdir(p("dirs/full")); err != unix.ENOTEMPTY {
			t.Errorf("rmdir of a non-empty lower dir: %v", err)
		}
		for _, name := range []string{"newdir/f", "newdir", "dirs/full/f", "dirs/full"} {
			if err := os.Remove(p(name)); err != nil {
				t.Error(err)
			}
		}
		if got := list(t, "dirs"); len(got) != 0 {
			t.Errorf("dirs holds %q", got)
		}
		// A lower directory made again is empty: what was below stays deleted.
		if err := os.MkdirAll(p("dirs/full"), 0o755); err != nil {
			t.Fatal(err)
		}
		if got := list(t, "dirs/full"); len(got) != 0 {
			t.Errorf("dirs/full made again holds %q", got)
		}
	})
	t.Run("unlink lower files", func(t *testing.T) {
		for _, name := range []string{"gone/x", "bin/bash"} {
			if err := os.Remove(p(name)); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Lstat(p(name)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s after unlink: %v", name, err)
			}
		}
		if got := list(t, "gone"); !slices.Equal(got, []string{"y"}) {
			t.Errorf("gone holds %q", got)
		}
		if st := stat(t, "bin/sh"); st.Nlink != 1 {
			t.Errorf("bin/sh has nlink %d after its other name went", st.Nlink)
		}
		if err := os.WriteFile(p("gone/x"), []byte("again"), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := read(t, "gone/x"); got != "again" {
			t.Errorf("gone/x made again: %q", got)
		}
	})
	t.Run("rename files", func(t *testing.T) {
		before := stat(t, "etc/passwd")
		if err := os.Rename(p("etc/passwd"), p("etc/passwd-")); err != nil {
			t.Fatal(err)
		}
		if st := stat(t, "etc/passwd-"); st.Ino != before.Ino {
			t.Errorf("renamed lower file has ino %d, had %d", st.Ino, before.Ino)
		}
		if err := os.Rename(p("new.txt"), p("etc/passwd")); err != nil { // an upper file into a lower dir
			t.Fatal(err)
		}
		if got := read(t, "etc/passwd"); got != "hello" {
			t.Errorf("etc/passwd = %q", got)
		}
		if err := os.Rename(p("etc/passwd-"), p("etc/passwd")); err != nil { // over an existing name
			t.Fatal(err)
		}
		if got := read(t, "etc/passwd"); got != "new" {
			t.Errorf("etc/passwd = %q", got)
		}
		if got := list(t, "etc"); !slices.Equal(got, []string{"passwd"}) {
			t.Errorf("etc holds %q", got)
		}
		if err := unix.Renameat2(unix.AT_FDCWD, p("log"), unix.AT_FDCWD, p("etc/passwd"), unix.RENAME_NOREPLACE); err != unix.EEXIST {
			t.Errorf("RENAME_NOREPLACE over a file: %v", err)
		}
		if err := unix.Renameat2(unix.AT_FDCWD, p("log"), unix.AT_FDCWD, p("etc/passwd"), unix.RENAME_EXCHANGE); err != nil {
			t.Errorf("RENAME_EXCHANGE: %v", err)
		}
		if a, b := read(t, "log"), read(t, "etc/passwd"); a != "new" || b != "aaa+1+2" {
			t.Errorf("after the exchange: %q and %q", a, b)
		}
		if err := unix.Renameat2(unix.AT_FDCWD, p("log"), unix.AT_FDCWD, p("log2"), unix.RENAME_WHITEOUT); err != unix.EINVAL {
			t.Errorf("RENAME_WHITEOUT: %v, want EINVAL", err)
		}
		if err := os.Rename(p("log"), p(".wh.log")); !errors.Is(err, syscall.EPERM) {
			t.Errorf("rename to .wh.log: %v, want EPERM", err)
		}
	})
	t.Run("rename a lower directory", func(t *testing.T) {
		before := stat(t, "tree/b/c.txt")
		if err := os.Rename(p("tree"), p("moved")); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(p("tree")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("tree after the rename: %v", err)
		}
		for name, want := range map[string]string{"moved/a.txt": "aaa", "moved/b/c.txt": "ccc", "moved/b/d/e.txt": "eee", "moved/b/link": "aaa"} {
			if got := read(t, name); got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
		if st := stat(t, "moved/b/c.txt"); st.Ino != before.Ino || st.Mode != syscall.S_IFREG|0o600 {
			t.Errorf("moved/b/c.txt: ino %d (was %d), mode %o", st.Ino, before.Ino, st.Mode)
		}
		if got := list(t, "moved/b"); !slices.Equal(got, []string{"c.txt", "d", "link"}) {
			t.Errorf("moved/b holds %q", got)
		}
		if err := os.WriteFile(p("moved/b/d/e.txt"), []byte("EEE"), 0); err != nil {
			t.Fatal(err)
		}
		if got := read(t, "moved/b/d/e.txt"); got != "EEE" {
			t.Errorf("written after the rename: %q", got)
		}
		// The old name made again is a new, empty directory.
		if err := os.Mkdir(p("tree"), 0o755); err != nil {
			t.Fatal(err)
		}
		if got := list(t, "tree"); len(got) != 0 {
			t.Errorf("tree made again holds %q", got)
		}
	})
	t.Run("symlink", func(t *testing.T) {
		if err := os.Symlink("../etc/passwd", p("bin/pw")); err != nil {
			t.Fatal(err)
		}
		if got, err := os.Readlink(p("bin/pw")); err != nil || got != "../etc/passwd" {
			t.Errorf("readlink = %q, %v", got, err)
		}
		if st := stat(t, "bin/pw"); st.Mode != syscall.S_IFLNK|0o777 || st.Size != int64(len("../etc/passwd")) {
			t.Errorf("symlink: mode %o size %d", st.Mode, st.Size)
		}
		if got := read(t, "bin/pw"); got != "aaa+1+2" {
			t.Errorf("through the link: %q", got)
		}
	})
	t.Run("hardlink", func(t *testing.T) {
		if err := os.Link(p("bin/sh"), p("sh2")); err != nil { // a lower file
			t.Fatal(err)
		}
		sh, sh2 := stat(t, "bin/sh"), stat(t, "sh2")
		if sh.Ino != sh2.Ino || sh.Nlink != 2 || sh2.Nlink != 2 {
			t.Errorf("bin/sh ino %d nlink %d, sh2 ino %d nlink %d", sh.Ino, sh.Nlink, sh2.Ino, sh2.Nlink)
		}
		if err := os.WriteFile(p("sh2"), []byte("#!new"), 0); err != nil {
			t.Fatal(err)
		}
		if got := read(t, "bin/sh"); got != "#!new" {
			t.Errorf("bin/sh after a write through sh2: %q", got)
		}
		if err := os.Link(p("gone/x"), p("gone/x2")); err != nil { // an upper file
			t.Fatal(err)
		}
		if st := stat(t, "gone/x"); st.Nlink != 2 {
			t.Errorf("gone/x nlink %d", st.Nlink)
		}
		if err := os.Remove(p("gone/x")); err != nil {
			t.Fatal(err)
		}
		if st := stat(t, "gone/x2"); st.Nlink != 1 || read(t, "gone/x2") != "again" {
			t.Errorf("gone/x2 nlink %d", st.Nlink)
		}
	})
	t.Run("attributes", func(t *testing.T) {
		if err := os.Chmod(p("attrs"), 0o4750); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p("attrs"), 123, 456); err != nil {
			t.Fatal(err)
		}
		mtime := time.Date(2001, 2, 3, 4, 5, 6, 789, time.UTC)
		if err := os.Chtimes(p("attrs"), mtime.Add(time.Hour), mtime); err != nil {
			t.Fatal(err)
		}
		st := stat(t, "attrs")
		// chown clears the setuid bit, as on any Linux file system.
		if st.Mode != syscall.S_IFREG|0o750 || st.Uid != 123 || st.Gid != 456 || st.Mtim.Sec != mtime.Unix() || st.Mtim.Nsec != 789 {
			t.Errorf("mode %o owner %d:%d mtime %d.%09d", st.Mode, st.Uid, st.Gid, st.Mtim.Sec, st.Mtim.Nsec)
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p("attrs"), []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_NOW}}, 0); err != nil {
			t.Fatal(err)
		}
		if st := stat(t, "attrs"); time.Since(time.Unix(st.Mtim.Sec, st.Mtim.Nsec)) > time.Minute {
			t.Errorf("mtime after UTIME_NOW: %d", st.Mtim.Sec)
		}
		if err := os.Chmod(p("tree"), 0o700); err != nil { // a directory
			t.Fatal(err)
		}
		if st := stat(t, "tree"); st.Mode != syscall.S_IFDIR|0o700 {
			t.Errorf("dir mode %o", st.Mode)
		}
	})
	t.Run("xattrs", func(t *testing.T) {
		name := p("attrs")
		if err := unix.Setxattr(name, "user.test", []byte("value"), 0); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		if n, err := unix.Getxattr(name, "user.test", buf); err != nil || string(buf[:n]) != "value" {
			t.Errorf("getxattr = %q, %v", buf[:max(n, 0)], err)
		}
		if err := unix.Setxattr(name, "user.test", []byte("v"), unix.XATTR_CREATE); err != unix.EEXIST {
			t.Errorf("XATTR_CREATE of an existing name: %v", err)
		}
		if err := unix.Setxattr(name, "user.other", []byte("v"), unix.XATTR_REPLACE); err != unix.ENODATA {
			t.Errorf("XATTR_REPLACE of a missing name: %v", err)
		}
		if n, err := unix.Listxattr(name, buf); err != nil || !slices.Contains(strings.Split(string(buf[:n]), "\x00"), "user.test") {
			t.Errorf("listxattr = %q, %v", buf[:max(n, 0)], err)
		}
		if err := unix.Removexattr(name, "user.test"); err != nil {
			t.Fatal(err)
		}
		if _, err := unix.Getxattr(name, "user.test", buf); err != unix.ENODATA {
			t.Errorf("getxattr after removal: %v", err)
		}
		if err := unix.Removexattr(name, "user.test"); err != unix.ENODATA {
			t.Errorf("removexattr of a missing name: %v", err)
		}
	})
	t.Run("mkfifo", func(t *testing.T) {
		if err := unix.Mkfifo(p("fifo"), 0o640); err != nil {
			t.Fatal(err)
		}
		if st := stat(t, "fifo"); st.Mode != syscall.S_IFIFO|0o640 {
			t.Errorf("fifo mode %o", st.Mode)
		}
		r, err := os.OpenFile(p("fifo"), os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		w, err := os.OpenFile(p("fifo"), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		w.WriteString("through the pipe")
		w.Close()
		buf := make([]byte, 64)
		if n, _ := r.Read(buf); string(buf[:n]) != "through the pipe" {
			t.Errorf("fifo read %q", buf[:n])
		}
	})
	t.Run("fsync", func(t *testing.T) {
		f, err := os.OpenFile(p("synced"), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("durable")
		if err := f.Sync(); err != nil {
			t.Errorf("fsync: %v", err)
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			t.Errorf("fdatasync: %v", err)
		}
		f.Close()
		for _, name := range []string{"synced", "data", ""} { // read-only fds, a directory
			f, err := os.Open(p(name))
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				t.Errorf("fsync of %q opened for reading: %v", name, err)
			}
			f.Close()
		}
	})
	t.Run("concurrent writers", func(t *testing.T) {
		// Writers open the same lower file at once (one copy-up for all) and each writes its own
		// part; appenders add records to one file.
		const writers, records = 4, 50
		var wg sync.WaitGroup
		errs := make(chan error, 2*writers)
		for i := range writers {
			wg.Go(func() {
				f, err := os.OpenFile(p("etc/passwd"), os.O_WRONLY, 0)
				if err != nil {
					errs <- err
					return
				}
				defer f.Close()
				if _, err := f.WriteAt(bytes.Repeat([]byte{byte('A' + i)}, 1000), int64(i)*1000); err != nil {
					errs <- err
				}
			})
			wg.Go(func() {
				f, err := os.OpenFile(p("appended"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
				if err != nil {
					errs <- err
					return
				}
				defer f.Close()
				for range records {
					if _, err := fmt.Fprintf(f, "writer %d\n", i); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		got := read(t, "etc/passwd")
		for i := range writers {
			if part := got[i*1000 : (i+1)*1000]; part != strings.Repeat(string(rune('A'+i)), 1000) {
				t.Errorf("part %d of etc/passwd is %.20q...", i, part)
			}
		}
		lines := strings.Split(strings.TrimSuffix(read(t, "appended"), "\n"), "\n")
		count := map[string]int{}
		for _, l := range lines {
			count[l]++
		}
		for i := range writers {
			if n := count[fmt.Sprintf("writer %d", i)]; n != records {
				t.Errorf("writer %d: %d records, want %d", i, n, records)
			}
		}
		if len(lines) != writers*records {
			t.Errorf("%d lines, want %d", len(lines), writers*records)
		}
	})
	t.Run("unlinked but open", func(t *testing.T) {
		f, err := os.OpenFile(p("gone/y"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := os.Remove(p("gone/y")); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("Y!"), 0); err != nil {
			t.Errorf("write to an unlinked file: %v", err)
		}
		b, err := io.ReadAll(io.NewSectionReader(f, 0, 100))
		if err != nil || string(b) != "Y!" {
			t.Errorf("read of an unlinked file: %q, %v", b, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Nlink != 0 || st.Size != 2 {
			t.Errorf("fstat of an unlinked file: nlink %d size %d, %v", st.Nlink, st.Size, err)
		}
	})
}

// compareTrees checks that the tree at cached, a mount whose kernel caches are warm, shows what the tree
// at fresh, a mount of the same view whose caches are cold, shows: names, types, modes, owners, sizes,
// inode numbers, link counts, mtimes, link targets and contents. The cached mount is asked by path first
// (no listing, whose READDIRPLUS replies would refresh the attributes) and listed last.
func compareTrees(t *testing.T, cached, fresh string) {
	t.Helper()
	type node struct {
		st   unix.Stat_t
		data string
	}
	get := func(p string) (node, error) {
		var n node
		if err := unix.Lstat(p, &n.st); err != nil {
			return n, err
		}
		switch n.st.Mode & syscall.S_IFMT {
		case syscall.S_IFREG:
			b, err := os.ReadFile(p)
			n.data = string(b)
			return n, err
		case syscall.S_IFLNK:
			var err error
			n.data, err = os.Readlink(p)
			return n, err
		}
		return n, nil
	}
	walk := func(root string) []string {
		var names []string
		err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			rel, _ := filepath.Rel(root, p)
			names = append(names, rel)
			return err
		})
		if err != nil {
			t.Fatalf("walking %s: %v", root, err)
		}
		return names
	}
	names := walk(fresh)
	for _, name := range names {
		y, err := get(filepath.Join(fresh, name))
		if err != nil {
			t.Fatal(err)
		}
		x, err := get(filepath.Join(cached, name))
		if err != nil {
			t.Errorf("%s: %v in the cached mount", name, err)
			continue
		}
		if x.data != y.data || x.st.Mode != y.st.Mode || x.st.Ino != y.st.Ino || x.st.Nlink != y.st.Nlink || x.st.Size != y.st.Size ||
			x.st.Uid != y.st.Uid || x.st.Gid != y.st.Gid || x.st.Mtim != y.st.Mtim || x.st.Rdev != y.st.Rdev {
			t.Errorf("%s differs:\n cached: mode %o ino %d nlink %d size %d owner %d:%d mtime %v data %.40q\n fresh:  mode %o ino %d nlink %d size %d owner %d:%d mtime %v data %.40q",
				name, x.st.Mode, x.st.Ino, x.st.Nlink, x.st.Size, x.st.Uid, x.st.Gid, x.st.Mtim, x.data,
				y.st.Mode, y.st.Ino, y.st.Nlink, y.st.Size, y.st.Uid, y.st.Gid, y.st.Mtim, y.data)
		}
	}
	if got := walk(cached); !slices.Equal(got, names) {
		t.Errorf("the cached mount lists %q\nthe fresh one %q", got, names)
	}
}

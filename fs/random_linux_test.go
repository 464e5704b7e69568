package fs

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/imgfs/imgfs/index"
)

// extract writes members into dir as an extractor of the layer would.
func extract(t *testing.T, dir string, members []memMember) {
	t.Helper()
	for _, m := range members {
		p := filepath.Join(dir, m.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch m.typ {
		case index.TypeDir:
			err = os.MkdirAll(p, 0o755)
			if err == nil {
				err = os.Chmod(p, os.FileMode(m.mode))
			}
		case index.TypeRegular:
			err = os.WriteFile(p, []byte(m.data), 0)
			if err == nil {
				err = os.Chmod(p, os.FileMode(m.mode))
			}
		case index.TypeSymlink:
			err = os.Symlink(m.data, p)
		case index.TypeHardlink:
			err = os.Link(filepath.Join(dir, m.data), p)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestMountWriteRandom applies the same random changes to a writable mount of a real overlay view and
// to a plain directory holding the same image, and checks that both give the same results and end up
// the same; then that a second, cold mount of the view shows what the first shows from its caches.
func TestMountWriteRandom(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			v, dir := newUpperView(t, writeImage...)
			mnt, _ := mountFS(t, newFileSystem(v, Options{UpperDir: dir}))
			ref := t.TempDir()
			extract(t, ref, writeImage)
			old := unix.Umask(0o022)
			defer unix.Umask(old)
			rng := rand.New(rand.NewPCG(seed, 1))
			for i := range 400 {
				op := newRandomOp(rng, ref)
				errRef := op.do(ref)
				errMnt := op.do(mnt)
				if errnoOf(errRef) != errnoOf(errMnt) {
					t.Fatalf("op %d, %s: %v on the mount, %v on the plain directory", i, op.name, errMnt, errRef)
				}
				if i%50 == 49 {
					compareWithRef(t, ref, mnt)
				}
			}
			compareWithRef(t, ref, mnt)
			fresh, _ := mountFS(t, newFileSystem(v, Options{UpperDir: dir}))
			compareTrees(t, mnt, fresh)
		})
	}
}

func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return syscall.EIO
}

// randomOp is one change, applied to the tree at root.
type randomOp struct {
	name string
	do   func(root string) error
}

func newRandomOp(rng *rand.Rand, ref string) randomOp {
	var paths, dirs []string
	filepath.WalkDir(ref, func(p string, d os.DirEntry, err error) error {
		rel, _ := filepath.Rel(ref, p)
		if rel != "." {
			paths = append(paths, rel)
		}
		if d != nil && d.IsDir() {
			dirs = append(dirs, rel)
		}
		return nil
	})
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	anyPath := func() string {
		if len(paths) == 0 || rng.IntN(8) == 0 {
			return filepath.Join(pick(dirs), fmt.Sprintf("n%d", rng.IntN(6)))
		}
		return pick(paths)
	}
	newName := func() string { return filepath.Join(pick(dirs), fmt.Sprintf("n%d", rng.IntN(6))) }
	target := func() string {
		if rng.IntN(2) == 0 {
			return newName()
		}
		return anyPath()
	}
	data := bytes.Repeat([]byte{byte('a' + rng.IntN(26))}, 1+rng.IntN(3000))
	off := int64(rng.IntN(5000))
	size := int64(rng.IntN(5000))
	mode := uint32(rng.IntN(0o1000)) | 0o600 // keep it readable and writable by its owner
	switch rng.IntN(13) {
	case 0:
		p := newName()
		return randomOp{"create " + p, func(r string) error {
			return os.WriteFile(filepath.Join(r, p), data, 0o644)
		}}
	case 1, 2:
		p := anyPath()
		return randomOp{fmt.Sprintf("write %d bytes at %d of %s", len(data), off, p), func(r string) error {
			f, err := os.OpenFile(filepath.Join(r, p), os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt(data, off)
			return err
		}}
	case 3:
		p := anyPath()
		return randomOp{fmt.Sprintf("truncate %s to %d", p, size), func(r string) error { return os.Truncate(filepath.Join(r, p), size) }}
	case 4:
		p := anyPath()
		return randomOp{"unlink " + p, func(r string) error { return unix.Unlink(filepath.Join(r, p)) }}
	case 5:
		p := newName()
		return randomOp{"mkdir " + p, func(r string) error { return unix.Mkdir(filepath.Join(r, p), 0o755) }}
	case 6:
		p := pick(dirs)
		if p == "." {
			p = anyPath() // the root is a mount point on one side only: EBUSY there
		}
		return randomOp{"rmdir " + p, func(r string) error { return unix.Rmdir(filepath.Join(r, p)) }}
	case 7, 8:
		from, to := anyPath(), target()
		flags := []uint{0, 0, unix.RENAME_NOREPLACE, unix.RENAME_EXCHANGE}[rng.IntN(4)]
		return randomOp{fmt.Sprintf("rename %s to %s, flags %d", from, to, flags), func(r string) error {
			return unix.Renameat2(unix.AT_FDCWD, filepath.Join(r, from), unix.AT_FDCWD, filepath.Join(r, to), flags)
		}}
	case 9:
		from, to := anyPath(), target()
		return randomOp{fmt.Sprintf("link %s to %s", from, to), func(r string) error {
			return unix.Link(filepath.Join(r, from), filepath.Join(r, to))
		}}
	case 10:
		p, to := newName(), anyPath()
		return randomOp{fmt.Sprintf("symlink %s to %s", p, to), func(r string) error { return os.Symlink(to, filepath.Join(r, p)) }}
	case 11:
		p := anyPath()
		return randomOp{fmt.Sprintf("chmod %s %o", p, mode), func(r string) error {
			return unix.Fchmodat(unix.AT_FDCWD, filepath.Join(r, p), mode, 0)
		}}
	default:
		p := anyPath()
		return randomOp{"setxattr " + p, func(r string) error {
			return unix.Lsetxattr(filepath.Join(r, p), "user.random", data[:min(len(data), 100)], 0)
		}}
	}
}

// compareWithRef checks that the tree at mnt shows what the plain directory ref holds: names, types,
// modes (permissions of symlinks aside), sizes of files, contents, link targets, user xattrs, and the
// same sets of hard links.
func compareWithRef(t *testing.T, ref, mnt string) {
	t.Helper()
	var names []string
	filepath.WalkDir(ref, func(p string, d os.DirEntry, err error) error {
		rel, _ := filepath.Rel(ref, p)
		names = append(names, rel)
		return nil
	})
	var mntNames []string
	if err := filepath.WalkDir(mnt, func(p string, d os.DirEntry, err error) error {
		rel, _ := filepath.Rel(mnt, p)
		mntNames = append(mntNames, rel)
		return err
	}); err != nil {
		t.Fatalf("walking the mount: %v", err)
	}
	if !slices.Equal(names, mntNames) {
		t.Fatalf("the mount lists %q\nthe plain directory %q", mntNames, names)
	}
	inos := map[uint64]uint64{} // ref ino → mount ino
	for _, name := range names {
		var a, b unix.Stat_t
		if err := unix.Lstat(filepath.Join(ref, name), &a); err != nil {
			t.Fatal(err)
		}
		if err := unix.Lstat(filepath.Join(mnt, name), &b); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		typ := a.Mode & syscall.S_IFMT
		if a.Mode != b.Mode || a.Uid != b.Uid || a.Gid != b.Gid {
			t.Errorf("%s: mode %o owner %d:%d, want %o %d:%d", name, b.Mode, b.Uid, b.Gid, a.Mode, a.Uid, a.Gid)
		}
		if typ == syscall.S_IFDIR {
			continue
		}
		if a.Size != b.Size || a.Nlink != b.Nlink {
			t.Errorf("%s: size %d nlink %d, want %d %d", name, b.Size, b.Nlink, a.Size, a.Nlink)
		}
		if m, ok := inos[a.Ino]; ok && m != b.Ino {
			t.Errorf("%s: ino %d, but another name of the same file has %d", name, b.Ino, m)
		}
		inos[a.Ino] = b.Ino
		switch typ {
		case syscall.S_IFREG:
			x, err1 := os.ReadFile(filepath.Join(ref, name))
			y, err2 := os.ReadFile(filepath.Join(mnt, name))
			if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
				t.Errorf("%s: contents differ (%d and %d bytes; %v, %v)", name, len(x), len(y), err1, err2)
			}
		case syscall.S_IFLNK:
			x, _ := os.Readlink(filepath.Join(ref, name))
			y, err := os.Readlink(filepath.Join(mnt, name))
			if x != y || err != nil {
				t.Errorf("%s: link to %q, want %q (%v)", name, y, x, err)
			}
			continue
		}
		x := make([]byte, 256)
		y := make([]byte, 256)
		n1, err1 := unix.Lgetxattr(filepath.Join(ref, name), "user.random", x)
		n2, err2 := unix.Lgetxattr(filepath.Join(mnt, name), "user.random", y)
		if errnoOf(err1) != errnoOf(err2) || (err1 == nil && !bytes.Equal(x[:n1], y[:n2])) {
			t.Errorf("%s: xattr %q (%v), want %q (%v)", name, y[:max(n2, 0)], err2, x[:max(n1, 0)], err1)
		}
	}
	seen := map[uint64]bool{}
	for _, m := range inos {
		if seen[m] {
			t.Errorf("two different files of the plain directory share ino %d on the mount", m)
		}
		seen[m] = true
	}
}

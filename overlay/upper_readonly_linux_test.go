package overlay

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imgfs/imgfs/index"
	"golang.org/x/sys/unix"
)

// roSnapshot describes every entry below root, root included: path, type, mode, owner, size, a hash of
// the content (or the symlink target, or the device numbers), mtime and ctime, and every xattr with its
// value (trusted.* and imgfs's and overlayfs's own included).
func roSnapshot(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		h := sha256.New()
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			h.Write([]byte(target))
		}
		s := fmt.Sprintf("%s mode=%o %d:%d size=%d rdev=%d nlink=%d mtime=%d.%09d ctime=%d.%09d data=%x",
			rel, st.Mode, st.Uid, st.Gid, st.Size, st.Rdev, st.Nlink, st.Mtim.Sec, st.Mtim.Nsec,
			st.Ctim.Sec, st.Ctim.Nsec, h.Sum(nil)[:8])
		for _, x := range upLlistxattr(t, p) {
			buf := make([]byte, 64<<10)
			n, err := unix.Lgetxattr(p, x, buf)
			if err != nil {
				return err
			}
			s += fmt.Sprintf(" %s=%q", x, buf[:n])
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// roUse does everything diff, commit and export --upper do with upper directory dir over layers: a
// read-only view walked and read whole, the change set and the layer stream. It returns the change set.
func roUse(t *testing.T, dir string, layers []Layer) []string {
	t.Helper()
	u, err := OpenUpper(UpperOptions{Dir: dir, Base: "sha256:base", ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	v, err := New(layers, Options{Upper: u})
	if err != nil {
		t.Fatal(err)
	}
	if v.Writable() {
		t.Error("a view over a read-only upper directory says it is writable")
	}
	walkView(t, v, func(p string, a Attr) {
		if a.Type == index.TypeRegular {
			readWhole(t, v, a)
		}
		if _, err := v.Xattrs(a.Node); err != nil {
			t.Errorf("xattrs of %s: %v", p, err)
		}
	})
	if _, err := ExportTar(context.Background(), v, io.Discard, nil); err != nil {
		t.Errorf("export: %v", err)
	}
	// Every change is refused before it reaches the directory.
	a, err := v.Lookup(Root, "f")
	if err != nil {
		t.Fatal(err)
	}
	for what, err := range map[string]error{
		"mkdir":    func() error { _, err := v.Mkdir(Root, "new", 0o755, upCaller); return err }(),
		"unlink":   v.Unlink(Root, "f"),
		"rename":   v.Rename(Root, "f", Root, "g", 0),
		"setxattr": v.SetXattr(a.Node, "user.x", []byte("1"), 0),
		"open rw":  func() error { _, err := v.OpenFile(a.Node, true, false); return err }(),
		"create":   func() error { _, _, err := v.Create(Root, "c", 0o644, upCaller); return err }(),
	} {
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s on a read-only upper directory: %v, want ErrReadOnly", what, err)
		}
	}
	lower, err := New(layers, Options{})
	if err != nil {
		t.Fatal(err)
	}
	changes, err := DiffLines(context.Background(), lower, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := CommitTar(context.Background(), io.Discard, lower, dir, nil); err != nil {
		t.Fatal(err)
	}
	return changes
}

// roFixture makes an upper directory with copy-ups, whiteouts, an opaque directory, a rename of a
// lower directory and xattrs (trusted.* ones as root) through a writable view, and closes it.
func roFixture(t *testing.T) (string, []Layer) {
	t.Helper()
	layers := layersOf(members{file("f", "1"), file("d/x", "2"), file("d/y", "3"), dir("e"), file("e/z", "4")})
	dir := filepath.Join(upTempDir(t), "upper")
	v, u := upOpen(t, dir, layers)
	for _, st := range []string{"write f@0=changed", "rm d/x", "rm e/z", "rmdir e", "mkdir e", "touch n=new",
		"mkdir m", "setx n user.k=v", "mv d d2", "sym s->f", "fifo p"} {
		if err := upDo(v, st); err != nil {
			t.Fatalf("%s: %v", st, err)
		}
	}
	if os.Geteuid() == 0 {
		if err := upDo(v, "setx n trusted.k=secret"); err != nil {
			t.Fatal(err)
		}
	}
	u.Close()
	return dir, layers
}

// TestUpperReadOnlyLeavesDirUnchanged: the read-only open, the view over it, export, Changes and
// WriteLayer write nothing into the upper directory: every byte, time and xattr stays.
func TestUpperReadOnlyLeavesDirUnchanged(t *testing.T) {
	t.Parallel()
	dir, layers := roFixture(t)
	before := roSnapshot(t, dir)
	changes := roUse(t, dir, layers)
	if len(changes) == 0 {
		t.Error("no changes listed")
	}
	if after := roSnapshot(t, dir); !slices.Equal(before, after) {
		t.Errorf("upper directory changed by read-only use:\nbefore:\n%s\nafter:\n%s",
			strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
}

// TestUpperReadOnlyBindMount: diff, commit and export work on a read-only bind mount of an upper
// directory, and on a file system without free inodes.
func TestUpperReadOnlyBindMount(t *testing.T) {
	t.Parallel()
	upNeedRoot(t)
	dir, layers := roFixture(t)
	want := roUse(t, dir, layers)
	ro := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(ro, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(dir, ro, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(ro, unix.MNT_DETACH) })
	if err := unix.Mount("", ro, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ro, "probe"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Fatalf("bind mount is not read-only: %v", err)
	}
	if got := roUse(t, ro, layers); !slices.Equal(got, want) {
		t.Errorf("changes on the read-only bind mount: %v, want %v", got, want)
	}

	// A tmpfs out of inodes: the upper directory is full, reading it still works.
	full := filepath.Join(t.TempDir(), "full")
	if err := os.Mkdir(full, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", full, "tmpfs", 0, "nr_inodes=64,size=4m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(full, unix.MNT_DETACH) })
	up := filepath.Join(full, "upper")
	if out, err := exec.Command("cp", "-a", dir, up).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	for i := 0; ; i++ {
		f, err := os.Create(filepath.Join(full, fmt.Sprint("fill", i)))
		if err != nil {
			if !errors.Is(err, unix.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
		f.Close()
	}
	if got := roUse(t, up, layers); !slices.Equal(got, want) {
		t.Errorf("changes on a full file system: %v, want %v", got, want)
	}
	// A writable mount still opens, so that files can be removed to make room.
	v, u := upOpen(t, up, layers)
	if err := upDo(v, "rm n"); err != nil {
		t.Errorf("removing an upper file on a full file system: %v", err)
	}
	u.Close()
}

// TestUpperReadOnlyRefusesForeignDirs: a read-only open wants a directory a mount of this very image
// made, says clearly what is wrong otherwise, and writes nothing.
func TestUpperReadOnlyRefusesForeignDirs(t *testing.T) {
	t.Parallel()
	dir, _ := roFixture(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, dir, base string
		is              error
		want            string
	}{
		{"subdirectory of an upper directory", filepath.Join(dir, "m"), "sha256:base", ErrNotUpper,
			"is not an imgfs upper directory (no base record); mount it with --upper first"},
		{"plain source tree", src, "sha256:base", ErrNotUpper,
			"is not an imgfs upper directory (no base record); mount it with --upper first"},
		{"upper directory of another image", dir, "sha256:other", ErrInvalid,
			`was made over base "sha256:base", not "sha256:other" (another image)`},
		{"missing", filepath.Join(src, "nope"), "sha256:base", os.ErrNotExist, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := roSnapshot(t, filepath.Dir(dir))
			beforeSrc := roSnapshot(t, src)
			_, err := OpenUpper(UpperOptions{Dir: tc.dir, Base: tc.base, ReadOnly: true})
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.dir) {
				t.Errorf("got %v, want %v naming %s and saying %q", err, tc.is, tc.dir, tc.want)
			}
			if after := roSnapshot(t, filepath.Dir(dir)); !slices.Equal(before, after) {
				t.Errorf("refused open changed the upper directory:\n%s", strings.Join(after, "\n"))
			}
			if after := roSnapshot(t, src); !slices.Equal(beforeSrc, after) {
				t.Errorf("refused open changed the source tree:\n%s", strings.Join(after, "\n"))
			}
		})
	}
}

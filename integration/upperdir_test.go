package integration

import (
	"archive/tar"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imgfs/imgfs/internal/sample"
)

// dirSnapshot describes every path below root, root included: type and mode, owner, size, a hash of
// the content or symlink target, device, mtime and ctime, and every xattr with its value (trusted.*
// included). Two equal snapshots mean nothing was written.
func dirSnapshot(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
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
			l, _ := os.Readlink(p)
			h.Write([]byte(l))
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, fmt.Sprintf("%s %o %d:%d size=%d rdev=%d mtime=%d ctime=%d %x %s", rel, st.Mode, st.Uid,
			st.Gid, st.Size, st.Rdev, st.Mtim.Nano(), st.Ctim.Nano(), h.Sum(nil)[:8], xattrs(t, p)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// upperWithChanges makes an upper directory of the sample through a writable mount: the round-trip
// changes, plus a file with an empty-valued and a non-empty xattr.
func upperWithChanges(t *testing.T) (dir, archive, upper string) {
	t.Helper()
	dir, archive = writeSample(t, "sample.tar")
	upper = filepath.Join(dir, "upper")
	mnt := mountImage(t, archive, "--upper", upper)
	changeTree(t, mnt)
	p := filepath.Join(mnt, "xattrs.txt")
	if err := os.WriteFile(p, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(p, "user.empty", nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(p, "user.full", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	unmountOrDie(t, mnt)
	waitControlGone(t, upper)
	return dir, archive, upper
}

// waitControlGone waits until the control socket of the mount of upper is gone: a daemon still
// shutting down accepts a commit's pause request and then drops it.
func waitControlGone(t *testing.T, upper string) {
	t.Helper()
	abs, _ := filepath.Abs(upper)
	sum := sha256.Sum256([]byte(abs))
	sock := filepath.Join("/run/imgfs", fmt.Sprintf("%x.sock", sum[:12]))
	for i := 0; i < 200; i++ {
		if _, err := os.Lstat(sock); errors.Is(err, fs.ErrNotExist) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("control socket %s still there", sock)
}

// TestUpperDirReadOnlyCommands: diff, commit and export --upper write nothing into DIR (every byte,
// time and xattr stays), and work on a read-only bind mount of it.
func TestUpperDirReadOnlyCommands(t *testing.T) {
	requireFUSE(t)
	dir, archive, upper := upperWithChanges(t)
	before := dirSnapshot(t, upper)
	diff, stderr, code := imgfs(t, "diff", "--cache-dir", cacheDir, "--upper", upper, archive)
	if code != 0 || diff == "" {
		t.Fatalf("diff: exit %d: %s", code, stderr)
	}
	for _, args := range [][]string{
		{"commit", "-q", "--cache-dir", cacheDir, "--upper", upper, "-o", filepath.Join(dir, "c.tar"), archive},
		{"commit", "-q", "--cache-dir", cacheDir, "--upper", upper, "--format", "oci", "-o", filepath.Join(dir, "c-oci"), archive},
		{"export", "-q", "--cache-dir", cacheDir, "--upper", upper, "-o", filepath.Join(dir, "flat.tar"), archive},
	} {
		if _, stderr, code := imgfs(t, args...); code != 0 {
			t.Fatalf("%s: exit %d: %s", args[0], code, stderr)
		}
	}
	if after := dirSnapshot(t, upper); !slices.Equal(before, after) {
		t.Errorf("read-only commands changed the upper directory:\nbefore:\n%s\nafter:\n%s",
			strings.Join(before, "\n"), strings.Join(after, "\n"))
	}

	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(upper, ro, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(ro, unix.MNT_DETACH)
	if err := unix.Mount("", ro, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	got, stderr, code := imgfs(t, "diff", "--cache-dir", cacheDir, "--upper", ro, archive)
	if code != 0 || got != diff {
		t.Errorf("diff of a read-only bind mount: exit %d: %s\n%s\nwant:\n%s", code, stderr, got, diff)
	}
	if _, stderr, code := imgfs(t, "commit", "-q", "--cache-dir", cacheDir, "--upper", ro, "-o",
		filepath.Join(dir, "ro.tar"), archive); code != 0 {
		t.Errorf("commit of a read-only bind mount: exit %d: %s", code, stderr)
	}
}

// TestUpperDirRefusesForeign: diff, commit and export --upper want a directory that a mount of this
// image made, say so in one line otherwise, and write nothing.
func TestUpperDirRefusesForeign(t *testing.T) {
	requireFUSE(t)
	dir, archive, upper := upperWithChanges(t)
	other := filepath.Join(dir, "other.tar")
	if err := sample.WriteArchive(other, "other:1", sample.Layers()[:1], false); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "cmd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "cmd/main.go"), []byte("package main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const noRecord = "is not an imgfs upper directory (no base record); mount it with --upper first"
	for _, tc := range []struct {
		name, dir, archive, want string
	}{
		{"subdirectory of an upper directory", filepath.Join(upper, "newdir"), archive, noRecord},
		{"plain source tree", src, archive, noRecord},
		{"upper directory of another image", upper, other, "(another image)"},
	} {
		for _, cmd := range []string{"diff", "commit", "export"} {
			t.Run(tc.name+"/"+cmd, func(t *testing.T) {
				out := filepath.Join(dir, "out-"+cmd+".tar")
				beforeUp, beforeSrc := dirSnapshot(t, upper), dirSnapshot(t, src)
				args := []string{cmd, "-q", "--cache-dir", cacheDir, "--upper", tc.dir}
				if cmd != "diff" {
					args = append(args, "-o", out)
				}
				_, stderr, code := imgfs(t, append(args, tc.archive)...)
				if code == 0 || !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, tc.dir) ||
					strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
					t.Errorf("exit %d, want one error line naming %s and saying %q:\n%s", code, tc.dir, tc.want, stderr)
				}
				if _, err := os.Lstat(out); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s was written", out)
				}
				if !slices.Equal(beforeUp, dirSnapshot(t, upper)) || !slices.Equal(beforeSrc, dirSnapshot(t, src)) {
					t.Error("a refused command wrote into a directory")
				}
			})
		}
	}
}

// TestEmptyXattrThroughUmoci: an xattr with an empty value, which pax cannot carry to every reader, is
// left out of a commit with a warning, so that umoci's unpack and imgfs's mount of the commit agree.
func TestEmptyXattrThroughUmoci(t *testing.T) {
	requireFUSE(t)
	requireTool(t, "umoci")
	dir, archive, upper := upperWithChanges(t)
	layout := filepath.Join(dir, "layout")
	_, stderr, code := imgfs(t, "commit", "--cache-dir", cacheDir, "--upper", upper, "--format", "oci", "-t", "c:1",
		"-o", layout, archive)
	if code != 0 {
		t.Fatalf("commit: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "empty value") || !strings.Contains(stderr, "user.empty") {
		t.Errorf("no warning about the empty xattr:\n%s", stderr)
	}
	bundle := filepath.Join(dir, "bundle")
	if out, err := exec.Command("umoci", "unpack", "--image", layout+":c:1", bundle).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	mnt := mountImage(t, layout)
	for _, root := range []string{filepath.Join(bundle, "rootfs"), mnt} {
		p := filepath.Join(root, "xattrs.txt")
		if got := xattrs(t, p); !strings.Contains(got, "user.full=76;") || strings.Contains(got, "user.empty") {
			t.Errorf("%s: xattrs %s, want user.full and no user.empty", p, got)
		}
	}
}

// TestExportSkipsItsOwnOutput: export -o MNT/x.tar, or stdout redirected into the mount, leaves its own
// partial output out of the archive, as GNU tar does ("file is the archive; not dumped").
func TestExportSkipsItsOwnOutput(t *testing.T) {
	requireFUSE(t)
	dir, archive := writeSample(t, "sample.tar")
	upper := filepath.Join(dir, "upper")
	mnt := mountImage(t, archive, "--upper", upper)
	if err := os.WriteFile(filepath.Join(mnt, "keep.txt"), []byte("kept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	members := func(p string) []string {
		t.Helper()
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var names []string
		tr := tar.NewReader(f)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return names
			}
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			names = append(names, h.Name)
		}
	}
	_, stderr, code := imgfs(t, "export", "--cache-dir", cacheDir, "--upper", upper, "-o", filepath.Join(mnt, "x.tar"), archive)
	if code != 0 {
		t.Fatalf("export -o: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "file is the archive; not dumped") {
		t.Errorf("no warning:\n%s", stderr)
	}
	names := members(filepath.Join(mnt, "x.tar"))
	if !slices.Contains(names, "keep.txt") || slices.ContainsFunc(names, func(n string) bool { return strings.Contains(n, "x.tar") }) {
		t.Errorf("export -o into the mount: members %q", names)
	}

	out, err := os.Create(filepath.Join(mnt, "y.tar"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(imgfsBin, "export", "--cache-dir", cacheDir, "--upper", upper, archive)
	cmd.Stdout = out
	var errb strings.Builder
	cmd.Stderr = &errb
	err = cmd.Run()
	out.Close()
	if err != nil {
		t.Fatalf("export > MNT/y.tar: %v: %s", err, errb.String())
	}
	names = members(filepath.Join(mnt, "y.tar"))
	if slices.Contains(names, "y.tar") || !slices.Contains(names, "x.tar") {
		t.Errorf("export > MNT/y.tar: members %q, want x.tar and not y.tar", names)
	}
	if !strings.Contains(errb.String(), "file is the archive; not dumped") {
		t.Errorf("no warning:\n%s", errb.String())
	}
}

// TestDeadMountHint: an upper directory on a mount whose daemon was killed gets an error that says so
// and how to clean it up, not a bare "transport endpoint is not connected".
func TestDeadMountHint(t *testing.T) {
	requireFUSE(t)
	dir, archive := writeSample(t, "sample.tar")
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	d := startForeground(t, archive, mnt)
	d.kill(t)
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	mnt2 := filepath.Join(dir, "mnt2")
	if err := os.Mkdir(mnt2, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"diff", "--cache-dir", cacheDir, "--upper", filepath.Join(mnt, "etc"), archive},
		{"mount", "--cache-dir", cacheDir, "--upper", filepath.Join(mnt, "up"), archive, mnt2},
	} {
		_, stderr, code := imgfs(t, args...)
		for _, want := range []string{"dead FUSE mount", "imgfs unmount", "fusermount3 -u"} {
			if code == 0 || !strings.Contains(stderr, want) {
				t.Errorf("%s: exit %d, want %q in:\n%s", args[0], code, want, stderr)
			}
		}
	}
	if isMountpoint(mnt2) {
		unix.Unmount(mnt2, unix.MNT_DETACH)
		t.Error("mounted over an upper directory on a dead mount")
	}
}

// daemon is an `imgfs mount --foreground` process.
type daemon struct {
	cmd    *exec.Cmd
	mnt    string
	stderr *strings.Builder
}

// startForeground mounts archive at mnt with flags in a foreground process and waits for the mount.
func startForeground(t *testing.T, archive, mnt string, flags ...string) *daemon {
	t.Helper()
	args := append([]string{"mount", "--foreground", "--quiet", "--cache-dir", cacheDir}, flags...)
	cmd := exec.Command(imgfsBin, append(args, archive, mnt)...)
	d := &daemon{cmd: cmd, mnt: mnt, stderr: &strings.Builder{}}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; !isMountpoint(mnt); i++ {
		if i == 1200 || cmd.ProcessState != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("mount did not come up: %s", d.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			d.kill(t)
		}
		unix.Unmount(mnt, unix.MNT_DETACH)
	})
	return d
}

// kill ends the daemon with SIGKILL, leaving a dead mount point.
func (d *daemon) kill(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(unix.SIGKILL)
	d.cmd.Wait()
}

// stop unmounts and waits for the daemon to exit.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	if _, stderr, code := imgfs(t, "unmount", d.mnt); code != 0 {
		t.Fatalf("unmount: exit %d: %s", code, stderr)
	}
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		d.kill(t)
		t.Fatalf("daemon did not exit after unmount: %s", d.stderr)
	}
}

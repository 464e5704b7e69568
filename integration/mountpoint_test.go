package integration

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// TestMountpointSafety: imgfs unmounts only imgfs mounts, says "not mounted" for a plain directory,
// refuses to stack a mount on a mount point, and replaces a dead imgfs mount (its daemon killed) instead of
// stacking on it.
func TestMountpointSafety(t *testing.T) {
	requireFUSE(t)
	_, archive := writeSample(t, "sample.tar")

	t.Run("tmpfs", func(t *testing.T) {
		dir := t.TempDir()
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
			t.Fatalf("mounting a tmpfs: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
		if err := os.WriteFile(filepath.Join(dir, "keep"), []byte("kept"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := imgfs(t, "unmount", dir)
		if code == 0 || !strings.Contains(stderr, "not an imgfs mount") || !strings.Contains(stderr, "tmpfs") {
			t.Errorf("imgfs unmount of a tmpfs: exit %d: %q; want a refusal naming tmpfs", code, stderr)
		}
		_, stderr, code = imgfs(t, "unmount", "--lazy", dir)
		if code == 0 || !strings.Contains(stderr, "not an imgfs mount") {
			t.Errorf("imgfs unmount --lazy of a tmpfs: exit %d: %q", code, stderr)
		}
		if n := mountsAt(t, dir); n != 1 {
			t.Fatalf("%d mounts at the tmpfs mount point, want it left alone", n)
		}
		_, stderr, code = imgfs(t, "mount", "--quiet", "--cache-dir", cacheDir, archive, dir)
		if code == 0 || !strings.Contains(stderr, "already a mount point") {
			t.Errorf("imgfs mount onto a tmpfs: exit %d: %q; want a refusal", code, stderr)
		}
		if n := mountsAt(t, dir); n != 1 {
			unmountOrDie(t, dir)
			t.Errorf("%d mounts at %s after mounting onto a tmpfs, want 1 (no stacking)", n, dir)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "keep")); err != nil || string(b) != "kept" {
			t.Errorf("the tmpfs lost its file: %q, %v", b, err)
		}
	})

	t.Run("not-mounted", func(t *testing.T) {
		dir := t.TempDir()
		_, stderr, code := imgfs(t, "unmount", dir)
		if code == 0 || !strings.Contains(stderr, "not mounted") || strings.Contains(stderr, "invalid argument") ||
			strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("imgfs unmount of a plain directory: exit %d: %q; want one line saying not mounted", code, stderr)
		}
		_, stderr, code = imgfs(t, "unmount", filepath.Join(dir, "missing"))
		if code == 0 || !strings.Contains(stderr, "no such file or directory") {
			t.Errorf("imgfs unmount of a missing directory: exit %d: %q", code, stderr)
		}
	})

	t.Run("live-imgfs", func(t *testing.T) {
		mnt := mountImage(t, archive)
		_, stderr, code := imgfs(t, "mount", "--quiet", "--cache-dir", cacheDir, archive, mnt)
		if code == 0 || !strings.Contains(stderr, "already an imgfs mount") || !strings.Contains(stderr, "imgfs unmount") {
			t.Errorf("imgfs mount onto a live imgfs mount: exit %d: %q; want a refusal saying how to unmount", code, stderr)
		}
		if n := mountsAt(t, mnt); n != 1 {
			t.Errorf("%d mounts at %s, want 1 (no stacking)", n, mnt)
		}
	})

	t.Run("dead-imgfs", func(t *testing.T) {
		mnt := mountImage(t, archive)
		killDaemon(t, mnt)
		_, stderr, code := imgfs(t, "mount", "--cache-dir", cacheDir, archive, mnt)
		if code != 0 {
			t.Fatalf("imgfs mount onto a dead imgfs mount: exit %d: %s", code, stderr)
		}
		if !strings.Contains(stderr, "dead imgfs mount") {
			t.Errorf("mount onto a dead imgfs mount did not say it cleaned it up: %q", stderr)
		}
		if n := mountsAt(t, mnt); n != 1 {
			t.Errorf("%d mounts at %s, want 1 (the dead one replaced, not stacked on)", n, mnt)
		}
		if b, err := os.ReadFile(filepath.Join(mnt, "etc/os-release")); err != nil || len(b) == 0 {
			t.Errorf("reading through the new mount: %v", err)
		}

		// imgfs unmount takes a dead imgfs mount away too.
		killDaemon(t, mnt)
		if _, stderr, code := imgfs(t, "unmount", mnt); code != 0 {
			t.Errorf("imgfs unmount of a dead imgfs mount: exit %d: %s", code, stderr)
		}
		if n := mountsAt(t, mnt); n != 0 {
			t.Errorf("%d mounts left at %s", n, mnt)
		}
	})
}

// mountsAt counts the mounts stacked on dir.
func mountsAt(t *testing.T, dir string) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMount(f[4]) == abs {
			n++
		}
	}
	return n
}

// daemonPID finds the background imgfs process serving mnt (by its command line).
func daemonPID(t *testing.T, mnt string) int {
	t.Helper()
	abs, _ := filepath.Abs(mnt)
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if len(args) < 3 || args[0] != imgfsBin || args[1] != "mount" || args[len(args)-1] != abs && args[len(args)-1] != mnt {
			continue
		}
		if env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ")); err == nil &&
			bytes.Contains(env, []byte("IMGFS_DAEMON_READY_FD=")) {
			return pid
		}
	}
	t.Fatalf("no imgfs daemon serving %s", mnt)
	return 0
}

// killDaemon SIGKILLs the daemon of mnt and waits until the kernel reports the mount dead (ENOTCONN).
func killDaemon(t *testing.T, mnt string) {
	t.Helper()
	pid := daemonPID(t, mnt)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	for i := 0; ; i++ {
		err := unix.Statfs(mnt, &st)
		if err == unix.ENOTCONN {
			return
		}
		if i == 100 {
			t.Fatalf("statfs %s after killing its daemon: %v, want ENOTCONN", mnt, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// otherFuseEnv makes the test binary serve an empty FUSE file system of type fuse.otherfs at the path
// it names (for a dead FUSE mount that is not imgfs's), until it is killed.
const otherFuseEnv = "IMGFS_TEST_OTHER_FUSE"

func init() {
	mnt := os.Getenv(otherFuseEnv)
	if mnt == "" {
		return
	}
	server, err := gofs.Mount(mnt, &gofs.Inode{}, &gofs.Options{MountOptions: fuse.MountOptions{
		Name: "otherfs", FsName: "otherfs-test", DirectMount: true}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "other fuse:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	server.Wait()
	os.Exit(0)
}

// TestMountpointDeadOtherFuse: a dead FUSE mount of another file system is neither replaced by mount nor
// taken away by unmount; both say what it is and what to do.
func TestMountpointDeadOtherFuse(t *testing.T) {
	requireFUSE(t)
	_, archive := writeSample(t, "sample.tar")
	mnt := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), otherFuseEnv+"="+mnt)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		for mountsAt(t, mnt) > 0 {
			if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
				t.Errorf("cleaning up %s: %v", mnt, err)
				return
			}
		}
	})
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		t.Fatalf("the other FUSE server did not start: %q", line)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != unix.ENOTCONN {
		t.Fatalf("statfs of the killed FUSE mount: %v, want ENOTCONN", err)
	}
	_, stderr, code := imgfs(t, "mount", "--quiet", "--cache-dir", cacheDir, archive, mnt)
	if code == 0 || !strings.Contains(stderr, "dead fuse.otherfs mount") || !strings.Contains(stderr, "umount -l") {
		t.Errorf("imgfs mount onto a dead fuse.otherfs mount: exit %d: %q; want a refusal saying how to remove it", code, stderr)
	}
	_, stderr, code = imgfs(t, "unmount", mnt)
	if code == 0 || !strings.Contains(stderr, "not an imgfs mount (fuse.otherfs") {
		t.Errorf("imgfs unmount of a dead fuse.otherfs mount: exit %d: %q", code, stderr)
	}
	if n := mountsAt(t, mnt); n != 1 {
		t.Errorf("%d mounts at %s, want the dead otherfs mount left alone", n, mnt)
	}
}

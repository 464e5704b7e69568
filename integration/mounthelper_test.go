package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMountHelper: mount(8) and fstab mount imgfs through /sbin/mount.fuse.imgfs (a link to the
// binary), -o options mapped to imgfs mount's flags, findmnt shows the source and type, umount
// unmounts.
func TestMountHelper(t *testing.T) {
	requireFUSE(t)
	for _, tool := range []string{"mount", "umount", "findmnt"} {
		requireTool(t, tool)
	}
	helper := "/sbin/mount.fuse.imgfs"
	if _, err := os.Lstat(helper); err == nil {
		t.Fatalf("%s exists already; this test installs its own link there (remove it or run elsewhere)", helper)
	}
	if err := os.Symlink(imgfsBin, helper); err != nil {
		t.Fatalf("installing the mount helper (root needed): %v", err)
	}
	t.Cleanup(func() { os.Remove(helper) })
	_, archive := writeSample(t, "sample.tar")
	cdir := filepath.Join(t.TempDir(), "cache")
	run := func(name string, args ...string) (string, error) {
		out, err := exec.Command(name, args...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	mounted := func(mnt string) {
		t.Helper()
		t.Cleanup(func() {
			if isMountpoint(mnt) {
				run("umount", mnt)
			}
		})
		got, err := run("findmnt", "-n", "-o", "SOURCE,FSTYPE", mnt)
		if want := "imgfs:" + archive + " fuse.imgfs"; err != nil || strings.Join(strings.Fields(got), " ") != want {
			t.Fatalf("findmnt %s = %q, %v; want %q", mnt, got, err, want)
		}
	}
	umount := func(mnt string) {
		t.Helper()
		if out, err := run("umount", mnt); err != nil || isMountpoint(mnt) {
			t.Fatalf("umount %s: %v: %s", mnt, err, out)
		}
	}

	// Read-only, options ro and nosuid passed to FUSE, mount(8)'s own dropped.
	mnt := t.TempDir()
	if out, err := run("mount", "-t", "fuse.imgfs", archive, mnt, "-o", "ro,nosuid,noauto,x-systemd.automount,cache-dir="+cdir); err != nil {
		t.Fatalf("mount -t fuse.imgfs: %v: %s", err, out)
	}
	mounted(mnt)
	if opts, _ := run("findmnt", "-n", "-o", "OPTIONS", mnt); !strings.HasPrefix(opts, "ro,") || !strings.Contains(opts, "nosuid") {
		t.Errorf("findmnt options %q, want ro and nosuid", opts)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "etc", "os-release")); err != nil || len(b) == 0 {
		t.Errorf("reading the mount: %v", err)
	}
	umount(mnt)

	// Writable through upper=, from an fstab line.
	mnt, upper := t.TempDir(), filepath.Join(t.TempDir(), "upper")
	fstab := filepath.Join(t.TempDir(), "fstab")
	line := archive + " " + mnt + " fuse.imgfs upper=" + upper + ",cache-dir=" + cdir + ",nofail 0 0\n"
	if err := os.WriteFile(fstab, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run("mount", "-T", fstab, mnt); err != nil {
		t.Fatalf("mount -T %s %s: %v: %s", fstab, mnt, err, out)
	}
	mounted(mnt)
	if err := os.WriteFile(filepath.Join(mnt, "written"), []byte("hello\n"), 0o644); err != nil {
		t.Fatalf("writing into the mount: %v", err)
	}
	umount(mnt)
	if b, err := os.ReadFile(filepath.Join(upper, "written")); err != nil || string(b) != "hello\n" {
		t.Errorf("upper directory after umount: %q, %v", b, err)
	}

	// A bad option is refused in one line, nothing mounted.
	mnt = t.TempDir()
	out, err := run("mount", "-t", "fuse.imgfs", archive, mnt, "-o", "upper")
	if err == nil || !strings.Contains(out, "option upper wants a value") || isMountpoint(mnt) {
		t.Errorf("mount -o upper (no value): %v: %q", err, out)
	}
}

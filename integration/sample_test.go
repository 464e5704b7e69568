package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgfs/imgfs/internal/sample"
)

// TestSampleAgainstUmoci mounts the demo sample and compares it, metadata, content, xattrs, mtimes
// and hardlink sets, with umoci's unpack of the same archive converted by skopeo.
func TestSampleAgainstUmoci(t *testing.T) {
	requireFUSE(t)
	requireTool(t, "skopeo")
	requireTool(t, "umoci")
	dir, archive := writeSample(t, "sample.tar")
	oci := filepath.Join(dir, "oci")
	run(t, "skopeo", "copy", "-q", "docker-archive:"+archive, "oci:"+oci+":latest")
	bundle := filepath.Join(dir, "bundle")
	run(t, "umoci", "unpack", "--image", oci+":latest", bundle)

	mnt := mountImage(t, archive)
	want := walkTree(t, filepath.Join(bundle, "rootfs"), true)
	got := walkTree(t, mnt, true)
	compareTrees(t, want, got, true)

	// The hardlink into a lower layer is one inode with three names.
	if n := got["usr/bin/hello"]; n == nil || n.Nlink != 3 || n.linkSet != "app/hello-hardlink,usr/bin/hello,usr/bin/hello-again" {
		t.Errorf("usr/bin/hello: want nlink 3 shared with app/hello-hardlink and usr/bin/hello-again, got %+v", n)
	}
	for _, gone := range []string{"etc/motd", "var/cache/app/old-1.bin", "usr/share/doc/sample"} {
		if _, err := os.Lstat(filepath.Join(mnt, gone)); !os.IsNotExist(err) {
			t.Errorf("%s: want hidden by a whiteout, got err=%v", gone, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(mnt, "etc", ".wh.motd")); !os.IsNotExist(err) {
		t.Errorf("whiteout marker visible: %v", err)
	}
}

// TestReadOnly checks that the mount refuses every kind of change and that the archive is untouched.
func TestReadOnly(t *testing.T) {
	requireFUSE(t)
	_, archive := writeSample(t, "sample.tar")
	before := fileSHA(t, archive)
	stBefore, _ := os.Stat(archive)
	mnt := mountImage(t, archive)
	for name, op := range map[string]func() error{
		"create":  func() error { return os.WriteFile(filepath.Join(mnt, "new"), nil, 0o644) },
		"write":   func() error { return os.WriteFile(filepath.Join(mnt, "etc/os-release"), []byte("x"), 0o644) },
		"mkdir":   func() error { return os.Mkdir(filepath.Join(mnt, "d"), 0o755) },
		"remove":  func() error { return os.Remove(filepath.Join(mnt, "etc/os-release")) },
		"rename":  func() error { return os.Rename(filepath.Join(mnt, "etc"), filepath.Join(mnt, "etc2")) },
		"chmod":   func() error { return os.Chmod(filepath.Join(mnt, "etc/os-release"), 0o600) },
		"symlink": func() error { return os.Symlink("x", filepath.Join(mnt, "l")) },
	} {
		if err := op(); err == nil || !strings.Contains(err.Error(), "read-only") {
			t.Errorf("%s on the mount: want a read-only file system error, got %v", name, err)
		}
	}
	unmountOrDie(t, mnt)
	stAfter, _ := os.Stat(archive)
	if after := fileSHA(t, archive); after != before || !stAfter.ModTime().Equal(stBefore.ModTime()) {
		t.Errorf("the archive changed: sha %s -> %s, mtime %v -> %v", before, after, stBefore.ModTime(), stAfter.ModTime())
	}
}

// TestBadInput checks that bad input gives one clear line naming the file and a non-zero exit.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	notArchive := filepath.Join(dir, "notes.txt")
	os.WriteFile(notArchive, []byte("just some text, not an image archive\n"), 0o644)
	truncated := filepath.Join(dir, "truncated.tar")
	full := filepath.Join(dir, "full.tar")
	if err := sample.Write(full); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(full)
	os.WriteFile(truncated, data[:len(data)/2], 0o644)
	mnt := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string // in the one error line
	}{
		{"missing archive", []string{"inspect", filepath.Join(dir, "nope.tar")}, "nope.tar"},
		{"not an archive", []string{"inspect", notArchive}, "notes.txt"},
		{"truncated archive", []string{"inspect", truncated}, "truncated.tar"},
		{"no such image", []string{"inspect", "--image", "nosuch:tag", full}, "nosuch"},
		{"bad platform", []string{"inspect", "--platform", "linux", full}, "platform"},
		{"missing mountpoint", []string{"mount", full, filepath.Join(dir, "nomnt")}, "nomnt"},
		{"no args", []string{"mount"}, "ARCHIVE MOUNTPOINT"},
		{"mount not an archive", []string{"mount", "--cache-dir", cacheDir, notArchive, mnt}, "notes.txt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := imgfs(t, tc.args...)
			if code == 0 {
				t.Fatalf("imgfs %v: exit 0, want failure", tc.args)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 1 || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "panic") {
				t.Errorf("imgfs %v: want one error line mentioning %q, got:\n%s", tc.args, tc.want, stderr)
			}
		})
	}
	if isMountpoint(mnt) {
		t.Errorf("a failed mount left %s mounted", mnt)
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

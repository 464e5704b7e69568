package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/imgfs/imgfs/internal/sample"
)

// changeTree makes the scripted changes of the round-trip tests through a writable mount: new files and
// directories, a write in the middle of a lower file, appends, deletes of lower files and directories,
// a lower directory deleted and recreated, renames of files and of a lower directory with children,
// symlinks, hardlinks (one to a lower file), chmod/chown of lower files, xattrs, a FIFO.
func changeTree(t *testing.T, mnt string) {
	t.Helper()
	p := func(s string) string { return filepath.Join(mnt, s) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(p("new.txt"), []byte("a new file\n"), 0o644))
	must(os.MkdirAll(p("newdir/sub"), 0o750))
	must(os.WriteFile(p("newdir/sub/deep.txt"), []byte("deep\n"), 0o600))
	f, err := os.OpenFile(p("etc/os-release"), os.O_WRONLY, 0)
	must(err)
	_, err = f.WriteAt([]byte("XX"), 5) // in the middle of a lower file: copy-up first
	must(err)
	must(f.Close())
	f, err = os.OpenFile(p("app/v2/run.sh"), os.O_WRONLY|os.O_APPEND, 0)
	must(err)
	_, err = f.WriteString("# appended\n")
	must(err)
	must(f.Close())
	must(os.Remove(p("usr/bin/hello-again"))) // a lower hardlink name
	must(os.RemoveAll(p("var/cache")))        // a lower directory with children
	must(os.RemoveAll(p("home/user")))        // deleted ...
	must(os.Mkdir(p("home/user"), 0o700))     // ... and recreated: opaque
	must(os.WriteFile(p("home/user/fresh"), []byte("fresh\n"), 0o644))
	must(os.Rename(p("app/config.json"), p("app/config.renamed.json")))
	must(os.Rename(p("app/v2"), p("app/v3"))) // a lower directory with children
	must(os.Symlink("../new.txt", p("app/link-to-new")))
	must(os.Link(p("usr/bin/hello"), p("usr/bin/hello-hard2"))) // hardlink of a lower file
	must(os.Chmod(p("etc/os-release"), 0o600))
	must(os.Lchown(p("usr/share/doc/sample-2.txt"), 1234, 5678))
	must(unix.Setxattr(p("new.txt"), "user.test.note", []byte("value"), 0))
	must(syscall.Mkfifo(p("newdir/fifo"), 0o640))
}

func TestWritableRoundTrip(t *testing.T) {
	requireFUSE(t)
	requireTool(t, "skopeo")
	requireTool(t, "umoci")
	dir, archive := writeSample(t, "sample.tar")
	upper := filepath.Join(dir, "upper")
	mnt := mountImage(t, archive, "--upper", upper)
	changeTree(t, mnt)
	view := walkTree(t, mnt, true)
	// The renamed file was copied up with its xattrs (image content, user.imgfs.* included).
	if x := view["app/config.renamed.json"]; x == nil || !strings.Contains(x.Xattrs, "user.imgfs.origin=") {
		t.Errorf("app/config.renamed.json lost its xattrs in the copy-up: %+v", x)
	}

	// diff, while the mount is live.
	out, stderr, code := imgfs(t, "diff", "--cache-dir", cacheDir, "--upper", upper, archive)
	if code != 0 {
		t.Fatalf("diff: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"A /new.txt", "A /newdir", "C /etc/os-release", "D /usr/bin/hello-again", "D /var/cache",
		"D /app/config.json", "A /app/config.renamed.json", "C /app"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("diff lacks %q:\n%s", want, out)
		}
	}

	// commit while the mount is live (paused). c1 keeps mtimes as they are (compared with the view);
	// c2 and c3 use SOURCE_DATE_EPOCH (mtimes clamped to it) and must be identical.
	commit := func(name string, env ...string) string {
		t.Helper()
		cmd := exec.Command(imgfsBin, "commit", "-q", "--cache-dir", cacheDir, "--upper", upper, "-o", filepath.Join(dir, name),
			"-t", "imgfs/committed:1", "-a", "tester", "-m", "round trip", "-c", "ENV FOO=bar", "-c", `CMD ["/bin/sh"]`, archive)
		cmd.Env = append(os.Environ(), env...)
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("commit %s: %v\n%s", name, err, stderrOf(err))
		}
		return strings.TrimSpace(string(b))
	}
	commit("c1.tar")
	id2 := commit("c2.tar", "SOURCE_DATE_EPOCH=1700000000")
	id3 := commit("c3.tar", "SOURCE_DATE_EPOCH=1700000000")
	if id2 != id3 || fileSHA(t, filepath.Join(dir, "c2.tar")) != fileSHA(t, filepath.Join(dir, "c3.tar")) {
		t.Errorf("two commits with the same SOURCE_DATE_EPOCH differ: %s vs %s", id2, id3)
	}
	committed := filepath.Join(dir, "c1.tar")

	// skopeo and umoci see the view the mount showed.
	cfg, err := exec.Command("skopeo", "inspect", "--config", "docker-archive:"+committed).Output()
	if err != nil {
		t.Fatalf("skopeo inspect: %v", err)
	}
	for _, want := range []string{`"FOO=bar"`, `"/bin/sh"`, `"tester"`, `"round trip"`} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("committed config lacks %s:\n%s", want, cfg)
		}
	}
	oci := filepath.Join(dir, "oci")
	run(t, "skopeo", "copy", "-q", "docker-archive:"+committed, "oci:"+oci+":latest")
	bundle := filepath.Join(dir, "bundle")
	run(t, "umoci", "unpack", "--image", oci+":latest", bundle)
	compareTrees(t, view, walkTree(t, filepath.Join(bundle, "rootfs"), true), true)

	// export --upper streams the same view.
	flat := filepath.Join(dir, "flat.tar")
	if _, stderr, code := imgfs(t, "export", "-q", "--cache-dir", cacheDir, "--upper", upper, "-o", flat, archive); code != 0 {
		t.Fatalf("export --upper: exit %d: %s", code, stderr)
	}
	compareTrees(t, view, walkTree(t, extract(t, flat), true), true)

	// The committed archive mounts with imgfs and shows the same view.
	compareTrees(t, view, walkTree(t, mountImage(t, committed), true), true)

	// The upper directory mounted again over the same archive gives the same view.
	unmountOrDie(t, mnt)
	compareTrees(t, view, walkTree(t, mountImage(t, archive, "--upper", upper), true), true)
}

// TestUpperMatchesKernelOverlay mounts the kernel's overlayfs with the same upper directory over the
// extracted image and compares it with imgfs's writable view.
func TestUpperMatchesKernelOverlay(t *testing.T) {
	requireFUSE(t)
	requireTool(t, "skopeo")
	requireTool(t, "umoci")
	dir, archive := writeSample(t, "sample.tar")
	upper := filepath.Join(dir, "upper")
	mnt := mountImage(t, archive, "--upper", upper)
	changeTree(t, mnt)
	view := walkTree(t, mnt, true)
	unmountOrDie(t, mnt)

	oci := filepath.Join(dir, "oci")
	run(t, "skopeo", "copy", "-q", "docker-archive:"+archive, "oci:"+oci+":latest")
	bundle := filepath.Join(dir, "bundle")
	run(t, "umoci", "unpack", "--image", oci+":latest", bundle)
	work, kmnt := filepath.Join(dir, "work"), filepath.Join(dir, "kernel")
	os.Mkdir(work, 0o755)
	os.Mkdir(kmnt, 0o755)
	opts := "lowerdir=" + filepath.Join(bundle, "rootfs") + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", kmnt, "overlay", 0, opts); err != nil {
		if inCI() {
			t.Fatalf("mount -t overlay: %v", err)
		}
		t.Skipf("mount -t overlay: %v", err)
	}
	defer unix.Unmount(kmnt, unix.MNT_DETACH)
	kernel := walkTree(t, kmnt, true)
	// overlayfs shows an upper file's own inode numbers; hardlink sets and nlink still compare.
	compareTrees(t, kernel, view, true)
}

// TestUpperRefusals checks the errors of diff and commit on bad input, and that nothing is written.
func TestUpperRefusals(t *testing.T) {
	requireFUSE(t)
	dir, archive := writeSample(t, "sample.tar")
	other := filepath.Join(dir, "other.tar")
	if err := sample.WriteArchive(other, "other:1", sample.Layers()[:1], false); err != nil {
		t.Fatal(err)
	}
	upper := filepath.Join(dir, "upper")
	mnt := mountImage(t, archive, "--upper", upper)
	if err := os.WriteFile(filepath.Join(mnt, "x"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, ".wh.sneaky"), nil, 0o644); err == nil {
		t.Error("creating a .wh. name succeeded")
	}
	unmountOrDie(t, mnt)
	out := filepath.Join(dir, "out.tar")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing upper", []string{"commit", "--upper", filepath.Join(dir, "nope"), "-o", out, archive}, "nope"},
		{"upper of another image", []string{"commit", "--upper", upper, "-o", out, other}, "upper"},
		{"unknown change", []string{"commit", "--upper", upper, "-c", "FROBNICATE x", "-o", out, archive}, "FROBNICATE"},
		{"diff of another image", []string{"diff", "--upper", upper, other}, "upper"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := imgfs(t, append([]string{tc.args[0], "-q", "--cache-dir", cacheDir}, tc.args[1:]...)...)
			if code == 0 || !strings.Contains(stderr, tc.want) || len(strings.Split(strings.TrimSpace(stderr), "\n")) != 1 {
				t.Errorf("exit %d, want one error line mentioning %q:\n%s", code, tc.want, stderr)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("%s was written", out)
			}
		})
	}
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// aclTree makes the tree of the ACL tests in dir: files whose ACLs deny what their mode bits seem to
// allow and grant what they seem to deny, and a directory with a default ACL.
func aclTree(t *testing.T, dir string) {
	t.Helper()
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	write := func(name, body string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("group-denied", "the owning group's entry denies\n", 0o640)
	run("chown", "0:50", filepath.Join(dir, "group-denied"))
	run("setfacl", "-m", "g::---,m::r--", filepath.Join(dir, "group-denied"))
	write("user-granted", "a named user may read\n", 0o600)
	run("setfacl", "-m", "u:1000:r--", filepath.Join(dir, "user-granted"))
	write("group-granted", "a named group may read\n", 0o600)
	run("setfacl", "-m", "g:60:r--", filepath.Join(dir, "group-granted"))
	write("plain", "no ACL\n", 0o644)
	if err := os.Mkdir(filepath.Join(dir, "inherit"), 0o755); err != nil {
		t.Fatal(err)
	}
	run("setfacl", "-d", "-m", "u:1000:rwx", filepath.Join(dir, "inherit"))
	write("inherit/old", "made before the default ACL applies\n", 0o644)
}

// cred is a caller of the access checks.
type cred struct {
	uid, gid uint32
	groups   []uint32
}

// canRead reports whether a process running as c may open p for reading.
func canRead(t *testing.T, p string, c cred) bool {
	t.Helper()
	cmd := exec.Command("cat", p)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: c.uid, Gid: c.gid, Groups: c.groups}}
	out, err := cmd.CombinedOutput()
	if err != nil && !strings.Contains(string(out), "Permission denied") {
		t.Fatalf("cat %s as %d:%d: %v: %s", p, c.uid, c.gid, err, out)
	}
	return err == nil
}

// canWrite reports whether a process running as c may open p for writing (without changing it).
func canWrite(t *testing.T, p string, c cred) bool {
	t.Helper()
	cmd := exec.Command("sh", "-c", `: >> "$1"`, "sh", p)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: c.uid, Gid: c.gid, Groups: c.groups}}
	out, err := cmd.CombinedOutput()
	if err != nil && !strings.Contains(string(out), "Permission denied") {
		t.Fatalf("write %s as %d:%d: %v: %s", p, c.uid, c.gid, err, out)
	}
	return err == nil
}

// getfacl returns getfacl's numeric listing of p without the file name line.
func getfacl(t *testing.T, p string) string {
	t.Helper()
	out, err := exec.Command("getfacl", "-n", "-p", p).CombinedOutput()
	if err != nil {
		t.Fatalf("getfacl %s: %v\n%s", p, err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.Join(lines[1:], "\n")
}

// reachable lets other users walk down to dir (t.TempDir makes private directories).
func reachable(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

var aclChecks = []struct {
	name  string
	who   cred
	read  bool
	write bool
}{
	{"group-denied", cred{1001, 50, nil}, false, false},
	{"group-denied", cred{1001, 1001, []uint32{50}}, false, false},
	{"group-denied", cred{1001, 1001, nil}, false, false},
	{"user-granted", cred{1000, 1000, nil}, true, false},
	{"user-granted", cred{1001, 1001, nil}, false, false},
	{"group-granted", cred{1001, 60, nil}, true, false},
	{"group-granted", cred{1001, 1001, []uint32{60}}, true, false},
	{"group-granted", cred{1001, 1001, nil}, false, false},
	{"plain", cred{1001, 1001, nil}, true, false},
}

// TestACLEnforced mounts images whose layer GNU tar wrote with --acls --xattrs (binary xattrs and text
// ACLs) and bsdtar wrote with --acls (text ACLs only, with numeric ids) and checks that the kernel
// enforces the ACLs on the mount as it does on the tree GNU tar extracts from the first layer.
func TestACLEnforced(t *testing.T) {
	requireFUSE(t)
	requireTool(t, "setfacl")
	requireTool(t, "bsdtar")
	dir := t.TempDir()
	reachable(t, dir)
	src := filepath.Join(dir, "src")
	oracle := filepath.Join(dir, "oracle")
	for _, d := range []string{src, oracle} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	aclTree(t, src)
	layer := filepath.Join(dir, "layer.tar")
	run(t, "tar", "--acls", "--xattrs", "--format=posix", "-cf", layer, "-C", src, ".")
	run(t, "tar", "--acls", "--xattrs", "-xpf", layer, "-C", oracle)
	bsdLayer := filepath.Join(dir, "bsdtar-layer.tar")
	run(t, "bsdtar", "--acls", "--format=pax", "-cf", bsdLayer, "-C", src, ".")
	if data, err := os.ReadFile(bsdLayer); err != nil || strings.Contains(string(data), "SCHILY.xattr.system.posix_acl") ||
		!strings.Contains(string(data), "SCHILY.acl.access") {
		t.Fatalf("bsdtar's layer should hold text ACLs only (%v)", err)
	}
	for _, l := range []string{layer, bsdLayer} {
		t.Run(filepath.Base(l), func(t *testing.T) {
			archive := strings.TrimSuffix(l, ".tar") + "-image.tar"
			if _, stderr, code := imgfs(t, "import", "--quiet", "-o", archive, l); code != 0 {
				t.Fatalf("import: exit %d: %s", code, stderr)
			}
			mnt := mountImage(t, archive)
			reachable(t, filepath.Dir(mnt))
			for _, c := range aclChecks {
				want := canRead(t, filepath.Join(oracle, c.name), c.who)
				if want != c.read {
					t.Fatalf("oracle: %s readable by %+v: %v, the test expects %v", c.name, c.who, want, c.read)
				}
				if got := canRead(t, filepath.Join(mnt, c.name), c.who); got != want {
					t.Errorf("%s readable by %+v: %v on the mount, %v on the extracted tree", c.name, c.who, got, want)
				}
			}
			for _, name := range []string{"group-denied", "user-granted", "group-granted", "plain", "inherit"} {
				if got, want := getfacl(t, filepath.Join(mnt, name)), getfacl(t, filepath.Join(oracle, name)); got != want {
					t.Errorf("getfacl %s: mount\n%s\nextracted\n%s", name, got, want)
				}
			}
		})
	}
}

// TestACLWritable changes ACLs and modes on a writable mount and on the extracted tree alike, and
// checks that both enforce and show the same ACLs: setfacl on a lower file (copied up), chmod of a file
// with an ACL (the mask follows), removal of an ACL, and files made in a directory with a default ACL.
func TestACLWritable(t *testing.T) {
	requireFUSE(t)
	requireTool(t, "setfacl")
	dir := t.TempDir()
	reachable(t, dir)
	src := filepath.Join(dir, "src")
	oracle := filepath.Join(dir, "oracle")
	for _, d := range []string{src, oracle} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	aclTree(t, src)
	layer := filepath.Join(dir, "layer.tar")
	run(t, "tar", "--acls", "--xattrs", "--format=posix", "-cf", layer, "-C", src, ".")
	run(t, "tar", "--acls", "--xattrs", "-xpf", layer, "-C", oracle)
	archive := filepath.Join(dir, "acl.tar")
	if _, stderr, code := imgfs(t, "import", "--quiet", "-o", archive, layer); code != 0 {
		t.Fatalf("import: exit %d: %s", code, stderr)
	}
	mnt := mountImage(t, archive, "--upper", filepath.Join(dir, "upper"))
	reachable(t, filepath.Dir(mnt))

	steps := [][]string{
		{"setfacl", "-m", "u:1001:r--", "plain"},
		{"setfacl", "-m", "u:1002:rw-", "user-granted"},
		{"chmod", "0600", "group-granted"},
		{"setfacl", "-b", "group-denied"},
		{"sh", "-c", "umask 022; echo new > inherit/new; mkdir inherit/sub; echo deeper > inherit/sub/f"},
		{"sh", "-c", "umask 077; echo private > inherit/private"},
		{"chmod", "0640", "inherit/old"},
		{"setfacl", "-m", "d:u:1002:rw-,u:1003:r-x", "inherit"}, // a lower directory: copied up
		{"sh", "-c", "umask 022; echo after > inherit/after; mkfifo inherit/fifo"},
	}
	for _, root := range []string{oracle, mnt} {
		for _, s := range steps {
			cmd := exec.Command(s[0], s[1:]...)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s in %s: %v\n%s", strings.Join(s, " "), root, err, out)
			}
		}
	}
	names := []string{"plain", "user-granted", "group-granted", "group-denied", "inherit", "inherit/new",
		"inherit/sub", "inherit/sub/f", "inherit/private", "inherit/old", "inherit/after", "inherit/fifo"}
	for _, name := range names {
		if got, want := getfacl(t, filepath.Join(mnt, name)), getfacl(t, filepath.Join(oracle, name)); got != want {
			t.Errorf("getfacl %s: mount\n%s\nextracted\n%s", name, got, want)
		}
	}
	whos := []cred{{1000, 1000, nil}, {1001, 1001, nil}, {1002, 1002, nil}, {1003, 50, nil}, {1003, 60, nil}}
	for _, name := range names {
		var st os.FileInfo
		st, err := os.Stat(filepath.Join(oracle, name))
		if err != nil {
			t.Fatal(err)
		}
		if !st.Mode().IsRegular() {
			continue
		}
		for _, w := range whos {
			for _, check := range []struct {
				what string
				f    func(*testing.T, string, cred) bool
			}{{"readable", canRead}, {"writable", canWrite}} {
				want := check.f(t, filepath.Join(oracle, name), w)
				if got := check.f(t, filepath.Join(mnt, name), w); got != want {
					t.Errorf("%s %s by %+v: %v on the mount, %v on the extracted tree", name, check.what, w, got, want)
				}
			}
		}
	}
}

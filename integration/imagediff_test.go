package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/imgfs/imgfs/internal/tartest"
)

// hdEnt is what the oracle knows of one path of an unpacked image.
type hdEnt struct {
	typ        fs.FileMode
	mode       uint32 // permission, setuid, setgid, sticky
	uid, gid   uint32
	size       int64
	mtime      int64 // ns
	link, sum  string
	rdev       uint64
	xattrs     string
	isDir      bool
	path, name string
}

// hdUnpackedTree lstats every path below root (an unpacked rootfs): "/etc/passwd" → its entry.
func hdUnpackedTree(t *testing.T, root string) map[string]*hdEnt {
	t.Helper()
	out := map[string]*hdEnt{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		rel := "/" + filepath.ToSlash(strings.TrimPrefix(p, root+"/"))
		e := &hdEnt{typ: d.Type(), mode: st.Mode & 0o7777, uid: st.Uid, gid: st.Gid, size: st.Size,
			mtime: st.Mtim.Nano(), rdev: st.Rdev, isDir: d.IsDir(), path: rel}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			e.link, err = os.Readlink(p)
		case d.Type().IsRegular():
			e.sum, err = hdFileSHA256(p)
		}
		if err != nil {
			return err
		}
		e.xattrs = hdListXattrs(t, p)
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func hdFileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hdListXattrs(t *testing.T, p string) string {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n == 0 {
		return ""
	}
	names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
	slices.Sort(names)
	var b strings.Builder
	for _, name := range names {
		v := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			t.Fatalf("getxattr %s %s: %v", p, name, err)
		}
		fmt.Fprintf(&b, "%s=%x;", name, v[:m])
	}
	return b.String()
}

// hdOracleDiff computes docker diff's change set of two unpacked trees, stated path by path rather than
// walked: a path only in B is added; a path only in A is deleted when its parent is a directory in B
// (so a deleted directory counts once); a path in both is changed when its type, mode, owner, device,
// link target or xattrs differ, or (not for two directories) its size, mtime or content; every
// directory above a change that is not listed itself is changed.
func hdOracleDiff(a, b map[string]*hdEnt) []string {
	kinds := map[string]string{}
	for p, eb := range b {
		ea := a[p]
		switch {
		case ea == nil:
			kinds[p] = "A"
		case ea.typ != eb.typ || ea.mode != eb.mode || ea.uid != eb.uid || ea.gid != eb.gid || ea.rdev != eb.rdev ||
			ea.link != eb.link || ea.xattrs != eb.xattrs ||
			(!(ea.isDir && eb.isDir) && (ea.size != eb.size || ea.mtime != eb.mtime || ea.sum != eb.sum)):
			kinds[p] = "C"
		}
	}
	for p := range a {
		if b[p] != nil {
			continue
		}
		if parent := path.Dir(p); parent == "/" || (b[parent] != nil && b[parent].isDir) {
			kinds[p] = "D"
		}
	}
	for p := range hdKeySet(kinds) {
		for q := path.Dir(p); q != "/"; q = path.Dir(q) {
			if _, ok := kinds[q]; !ok {
				kinds[q] = "C"
			}
		}
	}
	var out []string
	for p, k := range kinds {
		out = append(out, k+" "+p)
	}
	slices.SortFunc(out, func(x, y string) int { return strings.Compare(x[2:], y[2:]) })
	return out
}

// hdKeySet returns a copy of m's keys, so m can grow while they are walked.
func hdKeySet(m map[string]string) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

// TestImageDiffCorpus: imgfs diff of the corpus's l2 and l3 (one OCI layout, two tags) equals the
// change set computed from umoci unpack of both, line for line, and --json's sha256s are those of the
// unpacked files; two formats of one image (different layer blobs, same content) have no differences.
func TestImageDiffCorpus(t *testing.T) {
	requireTool(t, "umoci")
	corpus := corpusDir(t)
	d := filepath.Join(corpus, "artifacts", "debian-layered")
	unpackL3 := filepath.Join(corpus, "build", "unpack-l3", "rootfs")
	if _, err := os.Stat(unpackL3); err != nil {
		t.Fatalf("corpus unpack of l3 missing: %v", err)
	}
	// umoci unpack of l2 from a copy of the layout (umoci is not asked to leave the corpus as it was).
	tmp := t.TempDir()
	layout := filepath.Join(tmp, "layout")
	if out, err := exec.Command("cp", "-a", filepath.Join(d, "oci-umoci-src"), layout).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	bundle := filepath.Join(tmp, "l2")
	if out, err := exec.Command("umoci", "unpack", "--image", layout+":l2", bundle).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	ta, tb := hdUnpackedTree(t, filepath.Join(bundle, "rootfs")), hdUnpackedTree(t, unpackL3)
	want := hdOracleDiff(ta, tb)
	if len(want) < 40 {
		t.Fatalf("oracle found only %d changes: %q", len(want), want)
	}

	src := filepath.Join(d, "oci-umoci-src")
	stdout, stderr, code := imgfs(t, "diff", "-q", "--cache-dir", cacheDir, src+"@l2", src+"@l3")
	if code != 1 {
		t.Fatalf("diff l2 l3: exit %d, want 1: %s", code, stderr)
	}
	got := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if !slices.Equal(got, want) {
		t.Fatalf("imgfs diff l2 l3 differs from the umoci oracle:\n%s", hdLineDiff(want, got))
	}
	// The same with --image-a/--image-b, and in JSON with the unpacked files' sha256s.
	js, stderr, code := imgfs(t, "diff", "-q", "--json", "--cache-dir", cacheDir, "--image-a", "l2", "--image-b", "l3", src, src)
	if code != 1 {
		t.Fatalf("diff --json: exit %d: %s", code, stderr)
	}
	var doc struct {
		Summary struct{ Added, Changed, Deleted int }
		Changes []struct {
			Path, Kind string
			Old, New   *struct{ Type, Mode, SHA256 string }
			Flags      []string
		}
	}
	if err := json.Unmarshal([]byte(js), &doc); err != nil {
		t.Fatalf("diff --json: %v\n%s", err, js)
	}
	if len(doc.Changes) != len(want) || doc.Summary.Added+doc.Summary.Changed+doc.Summary.Deleted != len(want) {
		t.Fatalf("diff --json has %d changes (summary %+v), want %d", len(doc.Changes), doc.Summary, len(want))
	}
	hashed := 0
	for _, c := range doc.Changes {
		if c.Old != nil && c.Old.Type == "file" {
			if c.Old.SHA256 != ta[c.Path].sum {
				t.Errorf("%s: old sha256 %s, unpacked l2 has %s", c.Path, c.Old.SHA256, ta[c.Path].sum)
			}
			hashed++
		}
		if c.New != nil && c.New.Type == "file" {
			if c.New.SHA256 != tb[c.Path].sum {
				t.Errorf("%s: new sha256 %s, unpacked l3 has %s", c.Path, c.New.SHA256, tb[c.Path].sum)
			}
			hashed++
		}
	}
	if hashed < 10 {
		t.Errorf("only %d sha256s checked", hashed)
	}

	// One image in two formats: nothing differs, nothing printed, exit 0.
	stdout, stderr, code = imgfs(t, "diff", "-q", "--cache-dir", cacheDir, filepath.Join(d, "docker-save-20.10.tar"), filepath.Join(d, "oci-gzip"))
	if code != 0 || stdout != "" {
		t.Fatalf("diff of one image in two formats: exit %d, output %q: %s", code, stdout, stderr)
	}
}

// hdLineDiff shows the lines only one side has.
func hdLineDiff(want, got []string) string {
	var b strings.Builder
	for _, w := range want {
		if !slices.Contains(got, w) {
			fmt.Fprintf(&b, "missing: %s\n", w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			fmt.Fprintf(&b, "extra:   %s\n", g)
		}
	}
	if b.Len() == 0 {
		return "same lines, another order:\n" + strings.Join(got, "\n")
	}
	return b.String()
}

// TestImageDiffFlags: a setuid file added and an executable changed are flagged (stderr, --json); an
// image against itself prints nothing and exits 0; a missing archive exits 2; the --upper form works on.
func TestImageDiffFlags(t *testing.T) {
	dir := t.TempDir()
	base := tartest.Tar(t,
		tartest.Dir("usr/bin"),
		tartest.Member{Name: "usr/bin/tool", Body: []byte("v1"), Mode: 0o755},
		tartest.File("etc/conf", "a=1\n"),
	)
	top := tartest.Tar(t,
		tartest.Member{Name: "usr/bin/tool", Body: []byte("v2"), Mode: 0o755},
		tartest.Member{Name: "usr/local/bin/rootme", Body: []byte("payload"), Mode: 0o4755},
		tartest.Member{Name: "etc/cron", Body: []byte("* * * * * root /x"), Mode: 0o644},
	)
	a, b := filepath.Join(dir, "a.tar"), filepath.Join(dir, "b.tar")
	writeHashdiffArchive(t, a, "flags:a", base)
	writeHashdiffArchive(t, b, "flags:b", base, top)

	stdout, stderr, code := imgfs(t, "diff", "--cache-dir", cacheDir, a, b)
	want := "C /etc\nA /etc/cron\nC /usr\nC /usr/bin\nC /usr/bin/tool\nA /usr/local\nA /usr/local/bin\nA /usr/local/bin/rootme\n"
	if code != 1 || stdout != want {
		t.Fatalf("diff: exit %d\n%s\nwant\n%s\nstderr: %s", code, stdout, want, stderr)
	}
	for _, w := range []string{"flagged setuid,executable: A /usr/local/bin/rootme", "flagged executable: C /usr/bin/tool"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q: %s", w, stderr)
		}
	}
	if strings.Contains(stderr, "/etc/cron") {
		t.Errorf("a plain file flagged: %s", stderr)
	}
	js, _, code := imgfs(t, "diff", "-q", "--json", "--cache-dir", cacheDir, a, b)
	var doc struct {
		Summary struct{ Flagged int }
		Changes []struct {
			Path  string
			Flags []string
			New   struct{ Mode, SHA256 string }
		}
	}
	if err := json.Unmarshal([]byte(js), &doc); err != nil || code != 1 {
		t.Fatalf("diff --json: exit %d, %v\n%s", code, err, js)
	}
	sum := sha256.Sum256([]byte("payload"))
	for _, c := range doc.Changes {
		if c.Path == "/usr/local/bin/rootme" && (!slices.Equal(c.Flags, []string{"setuid", "executable"}) ||
			c.New.Mode != "4755" || c.New.SHA256 != hex.EncodeToString(sum[:])) {
			t.Errorf("rootme: %+v", c)
		}
	}
	if doc.Summary.Flagged != 2 {
		t.Errorf("summary says %d flagged, want 2", doc.Summary.Flagged)
	}

	stdout, stderr, code = imgfs(t, "diff", "--cache-dir", cacheDir, b, b)
	if code != 0 || stdout != "" || stderr != "" {
		t.Fatalf("image against itself: exit %d %q %q", code, stdout, stderr)
	}
	js, _, code = imgfs(t, "diff", "--json", "--cache-dir", cacheDir, b, b)
	if code != 0 || !strings.Contains(js, `"changes": []`) {
		t.Fatalf("image against itself, JSON: exit %d %s", code, js)
	}
	_, stderr, code = imgfs(t, "diff", "--cache-dir", cacheDir, a, filepath.Join(dir, "missing.tar"))
	if code != 2 || !strings.Contains(stderr, "missing.tar") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Fatalf("missing archive: exit %d, want 2 and one line naming it: %s", code, stderr)
	}
	_, stderr, code = imgfs(t, "diff", "--cache-dir", cacheDir, a+"@nosuch", b)
	if code != 2 {
		t.Fatalf("unknown image: exit %d, want 2: %s", code, stderr)
	}

	// The --upper form still lists an upper directory's changes.
	upper := filepath.Join(dir, "upper")
	mnt := mountImage(t, a, "--upper", upper)
	if err := os.WriteFile(filepath.Join(mnt, "etc/conf"), []byte("a=2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	unmountOrDie(t, mnt)
	stdout, stderr, code = imgfs(t, "diff", "--cache-dir", cacheDir, "--upper", upper, a)
	if code != 0 || stdout != "C /etc\nC /etc/conf\n" {
		t.Fatalf("diff --upper: exit %d %q %s", code, stdout, stderr)
	}
}

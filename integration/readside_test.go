package integration

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/imgfs/imgfs/internal/sample"
	"github.com/imgfs/imgfs/internal/tartest"
)

// writeArchive writes a docker-save archive of one image with the given layers into a new temp dir.
func writeArchive(t *testing.T, layers ...[]tartest.Member) (dir, archive string) {
	t.Helper()
	dir = t.TempDir()
	archive = filepath.Join(dir, "image.tar")
	if layers == nil {
		layers = [][]tartest.Member{}
	}
	if err := sample.WriteArchive(archive, "imgfs/test:latest", layers, false); err != nil {
		t.Fatal(err)
	}
	return dir, archive
}

// TestZeroLayerImage mounts, exports, inspects and commits an image without layers (a config-only
// "FROM scratch" image): an empty root, an empty tar, and a one-layer commit skopeo and umoci accept.
func TestZeroLayerImage(t *testing.T) {
	requireFUSE(t)
	requireTool(t, "skopeo")
	requireTool(t, "umoci")
	dir, archive := writeArchive(t)

	mnt := mountImage(t, archive)
	ents, err := os.ReadDir(mnt)
	if err != nil || len(ents) != 0 {
		t.Fatalf("listing the empty root: %v, %v", ents, err)
	}
	if st, err := os.Stat(mnt); err != nil || !st.IsDir() {
		t.Fatalf("stat root: %v", err)
	}

	flat := filepath.Join(dir, "flat.tar")
	if _, stderr, code := imgfs(t, "export", "-q", "--cache-dir", cacheDir, "-o", flat, archive); code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	if out, err := exec.Command("tar", "-tf", flat).CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("tar -t of the export: %v: %q", err, out)
	}

	out, stderr, code := imgfs(t, "inspect", "--json", "--cache-dir", cacheDir, archive)
	if code != 0 {
		t.Fatalf("inspect: exit %d: %s", code, stderr)
	}
	var ins struct{ Image struct{ Layers []any } }
	if err := json.Unmarshal([]byte(out), &ins); err != nil || len(ins.Image.Layers) != 0 {
		t.Errorf("inspect --json: %v, %d layers", err, len(ins.Image.Layers))
	}

	upper := filepath.Join(dir, "upper")
	wmnt := mountImage(t, archive, "--upper", upper)
	if err := os.Mkdir(filepath.Join(wmnt, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(wmnt, "d", "f"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	view := walkTree(t, wmnt, true)
	committed := filepath.Join(dir, "c.tar")
	if _, stderr, code := imgfs(t, "commit", "-q", "--cache-dir", cacheDir, "--upper", upper, "-o", committed, archive); code != 0 {
		t.Fatalf("commit: exit %d: %s", code, stderr)
	}
	oci := filepath.Join(dir, "oci")
	run(t, "skopeo", "copy", "-q", "docker-archive:"+committed, "oci:"+oci+":latest")
	b, err := exec.Command("umoci", "stat", "--json", "--image", oci+":latest").Output()
	if err != nil {
		t.Fatalf("umoci stat: %v", err)
	}
	var hist struct{ History []struct{ Layer any } }
	if err := json.Unmarshal(b, &hist); err != nil {
		t.Fatalf("umoci stat: %v", err)
	}
	layers := 0
	for _, h := range hist.History {
		if h.Layer != nil {
			layers++
		}
	}
	if layers != 1 {
		t.Errorf("committed image has %d layers, want 1:\n%s", layers, b)
	}
	bundle := filepath.Join(dir, "bundle")
	run(t, "umoci", "unpack", "--image", oci+":latest", bundle)
	compareTrees(t, view, walkTree(t, filepath.Join(bundle, "rootfs"), true), true)
}

// TestLayerWarningsRepeated mounts an image whose layer has members the index drops or changes (an
// escape through "..", a hardlink to a directory, an unknown typeflag): every mount, the cached one
// too, and inspect (text and JSON) repeat the warnings; the unknown member is a regular file in the
// mount and in the export.
func TestLayerWarningsRepeated(t *testing.T) {
	requireFUSE(t)
	dir, archive := writeArchive(t, []tartest.Member{
		tartest.Dir("d"), tartest.File("../escape", "x"), tartest.Hardlink("h", "d"),
		{Name: "q", Type: 'Q', Body: []byte("quux\n"), Mode: 0o640},
	})
	cache := filepath.Join(dir, "cache")
	want := []string{`msg="index: dropping member outside the root"`, `name=../escape`,
		`msg="index: dropping hardlink to a directory"`, `name=h target=d`,
		`msg="index: unknown tar typeflag, member kept as a regular file"`, `name=q typeflag='Q'`}
	for round := range 2 {
		mnt := t.TempDir()
		_, stderr, code := imgfs(t, "mount", "--cache-dir", cache, archive, mnt)
		if code != 0 {
			t.Fatalf("mount: exit %d: %s", code, stderr)
		}
		for _, w := range want {
			if !strings.Contains(stderr, w) {
				t.Errorf("mount %d: stderr lacks %s:\n%s", round+1, w, stderr)
			}
		}
		b, err := os.ReadFile(filepath.Join(mnt, "q"))
		st, serr := os.Lstat(filepath.Join(mnt, "q"))
		unmountOrDie(t, mnt)
		if err != nil || string(b) != "quux\n" || serr != nil || !st.Mode().IsRegular() || st.Mode().Perm() != 0o640 {
			t.Errorf("mount %d: q: %q, %v, %v, %v", round+1, b, err, st, serr)
		}
	}
	out, stderr, code := imgfs(t, "inspect", "--cache-dir", cache, archive)
	if code != 0 {
		t.Fatalf("inspect: exit %d: %s", code, stderr)
	}
	for _, w := range []string{"Warnings of layer 1 (3):", `index: dropping member outside the root name="../escape"`,
		`index: dropping hardlink to a directory name="h" target="d"`,
		`index: unknown tar typeflag, member kept as a regular file name="q" typeflag="'Q'"`} {
		if !strings.Contains(out, w) {
			t.Errorf("inspect lacks %s:\n%s", w, out)
		}
	}
	if !strings.Contains(stderr, want[4]) {
		t.Errorf("inspect stderr lacks the warnings:\n%s", stderr)
	}
	out, _, code = imgfs(t, "inspect", "--json", "-q", "--cache-dir", cache, archive)
	var ins struct {
		Image struct {
			Layers []struct {
				Warnings     []string
				WarningCount int64
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &ins); code != 0 || err != nil || len(ins.Image.Layers) != 1 ||
		ins.Image.Layers[0].WarningCount != 3 || len(ins.Image.Layers[0].Warnings) != 3 {
		t.Errorf("inspect --json: exit %d, %v: %+v", code, err, ins)
	}

	flat := filepath.Join(dir, "flat.tar")
	if _, stderr, code := imgfs(t, "export", "-q", "--cache-dir", cache, "-o", flat, archive); code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	lst, err := exec.Command("tar", "-tvf", flat).CombinedOutput()
	if err != nil || !strings.Contains(string(lst), "-rw-r----- 0/0               5 ") || !strings.Contains(string(lst), " q\n") {
		t.Errorf("export: %v:\n%s", err, lst)
	}

	// A change to q through a writable mount is committed as a regular file.
	upper := filepath.Join(dir, "upper")
	wmnt := mountImage(t, archive, "--upper", upper)
	wf, err := os.OpenFile(filepath.Join(wmnt, "q"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wf.WriteString("more\n"); err != nil {
		t.Fatal(err)
	}
	if err := wf.Close(); err != nil {
		t.Fatal(err)
	}
	committed := filepath.Join(dir, "c.tar")
	if _, stderr, code := imgfs(t, "commit", "-q", "--cache-dir", cache, "--upper", upper, "-o", committed, archive); code != 0 {
		t.Fatalf("commit: exit %d: %s", code, stderr)
	}
	cm := mountImage(t, committed)
	if b, err := os.ReadFile(filepath.Join(cm, "q")); err != nil || string(b) != "quux\nmore\n" {
		t.Errorf("q in the commit: %q, %v", b, err)
	}
}

// TestLongNamesMounted checks names over NAME_MAX and symlink targets of PATH_MAX bytes or more through
// a real mount, the export and a commit: long names are absent (ENAMETOOLONG), long symlinks are listed
// with their size but readlink gives ENAMETOOLONG, and the export holds their targets verbatim.
func TestLongNamesMounted(t *testing.T) {
	requireFUSE(t)
	n255, n256, n64k := strings.Repeat("a", 255), strings.Repeat("b", 256), strings.Repeat("c", 65535)
	dir, archive := writeArchive(t, []tartest.Member{
		tartest.File(n255, "ok\n"), tartest.File(n256, "hidden\n"), tartest.File(n64k, "hidden\n"),
		tartest.File("d/"+n256, "hidden\n"),
		tartest.Symlink("s4095", strings.Repeat("t", 4095)),
		tartest.Symlink("s4096", strings.Repeat("u", 4096)),
		tartest.Symlink("s5000", strings.Repeat("v", 5000)),
	})
	cache := filepath.Join(dir, "cache")
	mnt := t.TempDir()
	_, stderr, code := imgfs(t, "mount", "--cache-dir", cache, archive, mnt)
	if code != 0 {
		t.Fatalf("mount: exit %d: %s", code, stderr)
	}
	t.Cleanup(func() { unmountOrDie(t, mnt) })
	for _, w := range []string{"name_bytes=256", "name_bytes=65535", "target_bytes=4096", "target_bytes=5000"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("mount stderr lacks %s:\n%.3000s", w, stderr)
		}
	}
	checkLongNames(t, mnt, n255, n256)

	flat := filepath.Join(dir, "flat.tar")
	if _, stderr, code := imgfs(t, "export", "-q", "--cache-dir", cache, "-o", flat, archive); code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	got := map[string]string{}
	f, err := os.Open(flat)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			if err != io.EOF {
				t.Fatal(err)
			}
			break
		}
		got[h.Name] = h.Linkname
	}
	want := map[string]string{n255: "", "d/": "", "s4095": strings.Repeat("t", 4095),
		"s4096": strings.Repeat("u", 4096), "s5000": strings.Repeat("v", 5000)}
	if !maps.Equal(got, want) {
		t.Errorf("export holds %d members %.60q, want %d", len(got), slices.Sorted(maps.Keys(got)), len(want))
	}

	// Writable: d looks empty, so it can be removed; copying up a long symlink fails as creating it
	// would. The commit, mounted, shows the same.
	upper := filepath.Join(dir, "upper")
	wmnt := mountImage(t, archive, "--upper", upper)
	if err := os.Remove(filepath.Join(wmnt, "d")); err != nil {
		t.Errorf("rmdir d: %v", err)
	}
	if err := os.Lchown(filepath.Join(wmnt, "s5000"), 7, 7); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Errorf("lchown s5000: %v, want ENAMETOOLONG", err)
	}
	committed := filepath.Join(dir, "c.tar")
	if _, stderr, code := imgfs(t, "commit", "-q", "--cache-dir", cache, "--upper", upper, "-o", committed, archive); code != 0 {
		t.Fatalf("commit: exit %d: %s", code, stderr)
	}
	cm := mountImage(t, committed)
	if _, err := os.Lstat(filepath.Join(cm, "d")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("d in the commit: %v", err)
	}
	checkLongNames(t, cm, n255, n256)
}

// checkLongNames checks the root of a mount of the TestLongNamesMounted image.
func checkLongNames(t *testing.T, mnt, n255, n256 string) {
	t.Helper()
	ents, err := os.ReadDir(mnt)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if e.Name() != "d" {
			names = append(names, e.Name())
		}
	}
	if want := []string{n255, "s4095", "s4096", "s5000"}; !slices.Equal(names, want) {
		t.Errorf("%s lists %.40q, want %.40q", mnt, names, want)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, n255)); err != nil || string(b) != "ok\n" {
		t.Errorf("255-byte name: %q, %v", b, err)
	}
	for _, n := range []string{n256, strings.Repeat("b", 1025)} {
		if _, err := os.Lstat(filepath.Join(mnt, n)); !errors.Is(err, syscall.ENAMETOOLONG) {
			t.Errorf("lstat of a %d-byte name: %v, want ENAMETOOLONG", len(n), err)
		}
	}
	if d, err := os.ReadDir(filepath.Join(mnt, "d")); err == nil && len(d) != 0 {
		t.Errorf("d lists %d entries, want none", len(d))
	}
	if target, err := os.Readlink(filepath.Join(mnt, "s4095")); err != nil || len(target) != 4095 {
		t.Errorf("readlink s4095: %d bytes, %v", len(target), err)
	}
	for _, tc := range []struct {
		name string
		size int64
	}{{"s4096", 4096}, {"s5000", 5000}} {
		p := filepath.Join(mnt, tc.name)
		if st, err := os.Lstat(p); err != nil || st.Size() != tc.size || st.Mode()&os.ModeSymlink == 0 {
			t.Errorf("lstat %s: %v, %v", tc.name, st, err)
		}
		if _, err := os.Readlink(p); !errors.Is(err, syscall.ENAMETOOLONG) {
			t.Errorf("readlink %s: %v, want ENAMETOOLONG", tc.name, err)
		}
		if _, err := os.Stat(p); !errors.Is(err, syscall.ENAMETOOLONG) {
			t.Errorf("stat through %s: %v, want ENAMETOOLONG", tc.name, err)
		}
	}
}

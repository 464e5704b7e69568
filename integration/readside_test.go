package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
}

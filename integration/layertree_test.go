package integration

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/imgfs/imgfs/internal/tartest"
)

// The reserved directory of mount --layers and its provenance attributes (see README, "Layers,
// deletions and provenance").
const (
	treeDir    = ".imgfs"
	xattrLayer = "user.imgfs.layer"
	xattrOff   = "user.imgfs.offset"
	xattrPath  = "user.imgfs.path"
)

// extractLayer runs tar -x of one layer tar into a new directory, as root keeping owners, modes,
// devices and xattrs: the oracle of a layer tree.
func extractLayer(t *testing.T, layerTar string) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("tar", "-x", "-p", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-f", layerTar, "-C", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar -x %s: %v\n%s", layerTar, err, out)
	}
	return dir
}

// layerMember is one member of a layer tar as the hidden-set oracle needs it.
type layerMember struct {
	path string
	typ  byte
}

// tarMembers lists a layer tar's members (normalized paths, the root left out) with the directories
// their paths imply.
func tarMembers(t *testing.T, layerTar string) []layerMember {
	t.Helper()
	f, err := os.Open(layerTar)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []layerMember
	seen := map[string]bool{}
	tr := tar.NewReader(bufio.NewReaderSize(f, 1<<20))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", layerTar, err)
		}
		p := strings.Trim(strings.TrimPrefix(filepath.Clean("/"+h.Name), "/"), "/")
		if p == "" {
			continue
		}
		for d := filepath.Dir(p); d != "."; d = filepath.Dir(d) {
			if !seen[d] {
				seen[d] = true
				out = append(out, layerMember{d, tar.TypeDir})
			}
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, layerMember{p, h.Typeflag})
		}
	}
}

// hiddenOracle returns, per layer, the paths a container runtime deletes from it when it applies the
// higher layers' whiteouts (".wh.X" deletes X and below, ".wh..wh..opq" every lower child of its
// directory), with the directories leading to them; the markers themselves are not files.
func hiddenOracle(layers [][]layerMember) []map[string]bool {
	out := make([]map[string]bool, len(layers))
	for i := range out {
		out[i] = map[string]bool{}
	}
	for m, members := range layers {
		for _, mem := range members {
			dir, base := filepath.Dir(mem.path), filepath.Base(mem.path)
			if dir == "." {
				dir = ""
			}
			var covers func(p string) bool
			switch {
			case base == ".wh..wh..opq":
				covers = func(p string) bool { return dir == "" || strings.HasPrefix(p, dir+"/") }
			case strings.HasPrefix(base, ".wh..wh."):
				continue
			case strings.HasPrefix(base, ".wh."):
				target := strings.TrimPrefix(filepath.Join(dir, strings.TrimPrefix(base, ".wh.")), "/")
				covers = func(p string) bool { return p == target || strings.HasPrefix(p, target+"/") }
			default:
				continue
			}
			for n := 0; n < m; n++ {
				for _, low := range layers[n] {
					if strings.HasPrefix(filepath.Base(low.path), ".wh.") || !covers(low.path) {
						continue
					}
					out[n][low.path] = true
					for d := filepath.Dir(low.path); d != "."; d = filepath.Dir(d) {
						out[n][d] = true
					}
				}
			}
		}
	}
	return out
}

// layerDirName is the name mount --layers gives layer i (0 = bottom) of blob digest d.
func layerDirName(i int, d string) string {
	return fmt.Sprintf("%d-%s", i+1, strings.TrimPrefix(d, "sha256:")[:12])
}

// getxattr returns the value of attribute name of path, and whether it has one.
func getxattr(t *testing.T, path, name string) (string, bool) {
	t.Helper()
	buf := make([]byte, 4096)
	n, err := unix.Lgetxattr(path, name, buf)
	if errors.Is(err, unix.ENODATA) {
		return "", false
	}
	if err != nil {
		t.Fatalf("getxattr %s %s: %v", path, name, err)
	}
	return string(buf[:n]), true
}

// checkLayerTrees compares every layers/N tree of a --layers mount with tar -x of that layer's tar,
// and the hidden/ trees with hiddenOracle, content included.
func checkLayerTrees(t *testing.T, mnt string, tars, digests []string) {
	t.Helper()
	var members [][]layerMember
	extracted := make([]map[string]*node, len(tars))
	for i, lt := range tars {
		members = append(members, tarMembers(t, lt))
		want := walkTree(t, extractLayer(t, lt), true)
		got := walkTree(t, filepath.Join(mnt, treeDir, "layers", layerDirName(i, digests[i])), true)
		t.Logf("layer %d: %d entries", i+1, len(got))
		compareTrees(t, want, got, true)
		extracted[i] = want
	}
	if ents, err := os.ReadDir(filepath.Join(mnt, treeDir, "layers")); err != nil || len(ents) != len(tars) {
		t.Errorf("layers/ lists %d entries (%v), want %d", len(ents), err, len(tars))
	}
	oracle := hiddenOracle(members)
	var listed []string
	for i := range tars {
		dir := filepath.Join(mnt, treeDir, "hidden", layerDirName(i, digests[i]))
		if len(oracle[i]) == 0 {
			if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("layer %d lost nothing, but hidden/ has it: %v", i+1, err)
			}
			continue
		}
		listed = append(listed, filepath.Base(dir))
		got := walkTree(t, dir, true)
		t.Logf("layer %d: %d hidden entries", i+1, len(got))
		for p := range oracle[i] {
			g, ok := got[p]
			if !ok {
				t.Errorf("hidden/%s: missing %s", filepath.Base(dir), p)
				continue
			}
			w := *extracted[i][p]
			gc := *g
			w.ino, gc.ino, w.linkSet, gc.linkSet = 0, 0, "", ""
			if w.Type == "dir" {
				w.Mtime, gc.Mtime, w.Nlink, gc.Nlink = 0, 0, 0, 0
			}
			if w != gc {
				t.Errorf("hidden/%s/%s:\n    want %+v\n    got  %+v", filepath.Base(dir), p, w, gc)
			}
		}
		for p := range got {
			if !oracle[i][p] {
				t.Errorf("hidden/%s: extra %s", filepath.Base(dir), p)
			}
		}
	}
	ents, err := os.ReadDir(filepath.Join(mnt, treeDir, "hidden"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != strings.Join(listed, " ") {
		t.Errorf("hidden/ lists %q, want %q", names, listed)
	}
}

// tvfLayers reads the corpus's `tar -tvf` listings of an image's layers: path → the topmost layer
// (1-based) with a non-directory member there, and whether that member is a hard link.
func tvfLayers(t *testing.T, prefix string, n int) (layer map[string]int, hard map[string]bool) {
	t.Helper()
	layer, hard = map[string]int{}, map[string]bool{}
	for i := 1; i <= n; i++ {
		lines, err := readLines(fmt.Sprintf("%s.layer%d.tvf.txt", prefix, i))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range lines {
			f := strings.SplitN(line, " ", 2)
			if len(f) < 2 || len(f[0]) != 10 || f[0][0] == 'd' {
				continue
			}
			rest := strings.Fields(f[1])
			if len(rest) < 5 {
				continue
			}
			// perms owner size date time name: cut the name after the fifth field.
			name := f[1]
			for range 4 {
				name = strings.TrimLeft(name, " ")
				name = name[strings.IndexByte(name, ' '):]
			}
			name = strings.TrimLeft(name, " ")
			if j := strings.Index(name, " link to "); j >= 0 {
				name = name[:j]
			}
			if j := strings.Index(name, " -> "); j >= 0 {
				name = name[:j]
			}
			name = strings.TrimPrefix(strings.TrimPrefix(name, "./"), "/")
			layer[name], hard[name] = i, f[0][0] == 'h'
		}
	}
	return layer, hard
}

// TestLayerTreeCorpus mounts the corpus image (buildah's L3: 16 docker-style whiteouts and 3 opaque
// markers) with --layers and checks every layer tree against tar -x of its blob, the hidden trees
// against the whiteouts, the image files against the archive's blobs, and user.imgfs.layer/offset/path
// of every regular file against the corpus's tar -tvf listings and the layer blobs' bytes.
func TestLayerTreeCorpus(t *testing.T) {
	corpus := corpusDir(t)
	requireTool(t, "tar")
	oci := filepath.Join(corpus, "artifacts", "debian-layered", "oci-uncompressed")
	var idx struct {
		Manifests []struct{ Digest string } `json:"manifests"`
	}
	readJSON(t, filepath.Join(oci, "index.json"), &idx)
	blob := func(d string) string { return filepath.Join(oci, "blobs", "sha256", strings.TrimPrefix(d, "sha256:")) }
	var man struct {
		Config struct{ Digest string }   `json:"config"`
		Layers []struct{ Digest string } `json:"layers"`
	}
	readJSON(t, blob(idx.Manifests[0].Digest), &man)
	var tars, digests []string
	for _, l := range man.Layers {
		tars, digests = append(tars, blob(l.Digest)), append(digests, l.Digest)
	}
	wh, err := os.ReadFile(filepath.Join(corpus, "listings", "debian-layered.buildah-l3.whiteouts.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if n, o := strings.Count(string(wh), "/.wh."), strings.Count(string(wh), "/.wh..wh..opq"); n-o != 16 || o != 3 ||
		!strings.Contains(string(wh), man.Layers[2].Digest) {
		t.Fatalf("the corpus's L3 is not buildah's (%d whiteouts, %d opaque markers)", n-o, o)
	}

	mnt := mountImage(t, oci, "--layers")

	// The merged listing does not show the tree; a lookup finds it.
	out, err := exec.Command("ls", "-a", mnt).Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), treeDir) {
		t.Errorf("ls -a of the root shows %s:\n%s", treeDir, out)
	}
	if st, err := os.Stat(filepath.Join(mnt, treeDir)); err != nil || !st.IsDir() {
		t.Fatalf("stat %s: %v", treeDir, err)
	}
	// The merged view is the reference view, unchanged by the tree.
	compareWithReference(t, mnt, filepath.Join(corpus, "listings", "debian-layered.l3"))

	checkLayerTrees(t, mnt, tars, digests)

	// image/: the archive's bytes.
	cfg, err := os.ReadFile(blob(man.Config.Digest))
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]json.RawMessage
	if err := json.Unmarshal(cfg, &c); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{"manifest.json": blob(idx.Manifests[0].Digest), "config.json": blob(man.Config.Digest)} {
		want, _ := os.ReadFile(path)
		if got, err := os.ReadFile(filepath.Join(mnt, treeDir, "image", name)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("image/%s differs from the archive's blob (%v)", name, err)
		}
	}
	if got, err := os.ReadFile(filepath.Join(mnt, treeDir, "image", "history.json")); err != nil || !bytes.Equal(got, c["history"]) {
		t.Errorf("image/history.json = %q (%v), want the config's history %q", got, err, c["history"])
	}

	// Provenance of every regular file of the merged view, never listed.
	tvf, hard := tvfLayers(t, filepath.Join(corpus, "listings", "debian-layered.buildah-l3"), len(tars))
	blobs := make([]*os.File, len(tars))
	for i, p := range tars {
		if blobs[i], err = os.Open(p); err != nil {
			t.Fatal(err)
		}
		defer blobs[i].Close()
	}
	merged := walkTree(t, mnt, false)
	checked, offsets := 0, 0
	for p, n := range merged {
		if strings.Contains(n.Xattrs, "user.imgfs.") {
			t.Errorf("%s lists %s", p, n.Xattrs)
		}
		full := filepath.Join(mnt, p)
		name := xattrLayer
		if n.Type != "file" && n.Type != "dir" {
			name = "trusted.imgfs.layer" // Linux allows no user.* attribute on these
		}
		lay, ok := getxattr(t, full, name)
		if !ok {
			t.Errorf("%s: no %s", p, name)
			continue
		}
		if n.Type == "symlink" && tvf[p] != 0 && lay != fmt.Sprintf("%d %s", tvf[p], digests[tvf[p]-1]) {
			t.Errorf("%s: %s = %q, want layer %d", p, name, lay, tvf[p])
		}
		if n.Type != "file" || hard[p] || n.Nlink > 1 {
			continue // a hard link shows its target's member (checked by the layer trees)
		}
		want, ok := tvf[p]
		if !ok {
			t.Errorf("%s: in no layer listing", p)
			continue
		}
		if wantLay := fmt.Sprintf("%d %s", want, digests[want-1]); lay != wantLay {
			t.Errorf("%s: %s = %q, want %q", p, xattrLayer, lay, wantLay)
		}
		if mp, _ := getxattr(t, full, xattrPath); mp != p {
			t.Errorf("%s: %s = %q", p, xattrPath, mp)
		}
		checked++
		offStr, ok := getxattr(t, full, xattrOff)
		off, err := strconv.ParseInt(offStr, 10, 64)
		if !ok || err != nil {
			t.Errorf("%s: %s = %q", p, xattrOff, offStr)
			continue
		}
		if n.Size > 1<<20 {
			continue
		}
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(blobs[want-1], off, n.Size)); err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != fileSHA(t, full) {
			t.Errorf("%s: the %d bytes at %s %d of layer %d are not the file's", p, n.Size, xattrOff, off, want)
		}
		offsets++
	}
	t.Logf("provenance of %d files checked, %d offsets against the blobs", checked, offsets)
	if checked < 5000 || offsets < 5000 {
		t.Errorf("only %d files / %d offsets checked", checked, offsets)
	}

	// cp -a and getfattr -d of a mounted file carry no provenance; the tree is read-only.
	dst := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", filepath.Join(mnt, "srv/corpus/xattr/user.txt"), dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v\n%s", err, out)
	}
	if x := xattrs(t, dst); strings.Contains(x, "imgfs") || !strings.Contains(x, "user.corpus.note") {
		t.Errorf("cp -a copied xattrs %q", x)
	}
	checkTreeRefusesWrites(t, mnt, filepath.Join(treeDir, "layers", layerDirName(0, digests[0]), "etc", "hostname"), unix.EROFS)
}

// checkTreeRefusesWrites tries every kind of change on file rel of the tree (and its directory) and
// expects each to fail with want (EROFS).
func checkTreeRefusesWrites(t *testing.T, mnt, rel string, want unix.Errno) {
	t.Helper()
	p := filepath.Join(mnt, rel)
	dir := filepath.Dir(p)
	for name, err := range map[string]error{
		"open for writing": func() error {
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err == nil {
				f.Close()
			}
			return err
		}(),
		"truncate": os.Truncate(p, 0),
		"create": func() error {
			f, err := os.OpenFile(filepath.Join(dir, "new"), os.O_CREATE|os.O_WRONLY, 0o644)
			if err == nil {
				f.Close()
			}
			return err
		}(),
		"mkdir":    os.Mkdir(filepath.Join(dir, "newdir"), 0o755),
		"remove":   os.Remove(p),
		"rename":   os.Rename(p, p+".moved"),
		"chmod":    os.Chmod(p, 0o777),
		"chown":    os.Lchown(p, 1, 1),
		"symlink":  os.Symlink("x", filepath.Join(dir, "sym")),
		"setxattr": unix.Lsetxattr(p, "user.x", []byte("y"), 0),
	} {
		if !errors.Is(err, want) {
			t.Errorf("%s %s: %v, want %v", name, rel, err, want)
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// deletedFileLayers is the deleted-file case: etc/motd added in layer 1, changed nowhere, whited out
// in layer 3; a/ made opaque in layer 3; etc/keep replaced in layer 2.
func deletedFileLayers() [][]tartest.Member {
	return [][]tartest.Member{
		{tartest.Dir("etc"), tartest.File("etc/motd", "motd of layer 1\n"), tartest.File("etc/keep", "keep 1"),
			tartest.Dir("a"), tartest.File("a/old", "old"), tartest.File("hl/target", "T"), tartest.Hardlink("hl/link", "hl/target")},
		{{Name: "etc/keep", Body: []byte("keep 2"), Mode: 0o600, UID: 7, GID: 8}, tartest.File("x", "x of layer 2")},
		{tartest.Whiteout("etc", "motd"), tartest.Opaque("a"), tartest.File("a/new", "new"), tartest.Whiteout("", "x")},
	}
}

// TestLayerTreeDeletedFile: a file added in layer 1 and whited out in layer 3 is absent from the merged
// view and present under hidden/ with its layer-1 content; the layer trees equal tar -x of the layers;
// provenance names the right layer; on a writable --layers mount the tree refuses every change, the
// reserved name cannot be made or moved, provenance cannot be set, and export and commit of the
// upper directory contain nothing of the tree.
func TestLayerTreeDeletedFile(t *testing.T) {
	requireTool(t, "tar")
	stack := deletedFileLayers()
	dir, archive := writeArchive(t, stack...)
	var tars, digests []string
	for i, members := range stack {
		b := tartest.Tar(t, members...)
		p := filepath.Join(dir, fmt.Sprintf("layer%d.tar", i+1))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		tars, digests = append(tars, p), append(digests, "sha256:"+hex.EncodeToString(sum[:]))
	}

	mnt := mountImage(t, archive, "--layers")
	if _, err := os.Lstat(filepath.Join(mnt, "etc/motd")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("etc/motd in the merged view: %v", err)
	}
	hidden := filepath.Join(mnt, treeDir, "hidden", layerDirName(0, digests[0]), "etc/motd")
	if b, err := os.ReadFile(hidden); err != nil || string(b) != "motd of layer 1\n" {
		t.Errorf("hidden etc/motd: %q %v", b, err)
	}
	if lay, _ := getxattr(t, hidden, xattrLayer); lay != "1 "+digests[0] {
		t.Errorf("hidden etc/motd: %s = %q", xattrLayer, lay)
	}
	wh := filepath.Join(mnt, treeDir, "layers", layerDirName(2, digests[2]), "etc/.wh.motd")
	if st, err := os.Lstat(wh); err != nil || !st.Mode().IsRegular() || st.Size() != 0 {
		t.Errorf("layer 3's whiteout marker: %v %v", st, err)
	}
	checkLayerTrees(t, mnt, tars, digests)
	for p, want := range map[string]int{"etc/keep": 2, "a/new": 3, "hl/link": 1, "etc": 1} {
		if lay, _ := getxattr(t, filepath.Join(mnt, p), xattrLayer); lay != fmt.Sprintf("%d %s", want, digests[want-1]) {
			t.Errorf("%s: %s = %q, want layer %d", p, xattrLayer, lay, want)
		}
	}
	// The tools: getfattr -n answers, getfattr -d (listxattr) shows nothing of imgfs.
	requireTool(t, "getfattr")
	if out, err := exec.Command("getfattr", "--only-values", "-n", xattrLayer, filepath.Join(mnt, "etc/keep")).Output(); err != nil ||
		string(out) != "2 "+digests[1] {
		t.Errorf("getfattr -n %s etc/keep: %q %v", xattrLayer, out, err)
	}
	if out, err := exec.Command("getfattr", "-d", "-m", "-", "-R", mnt+"/etc").CombinedOutput(); err != nil || strings.Contains(string(out), "imgfs") {
		t.Errorf("getfattr -d -m - -R lists: %s %v", out, err)
	}
	checkTreeRefusesWrites(t, mnt, filepath.Join(treeDir, "hidden", layerDirName(0, digests[0]), "etc/motd"), unix.EROFS)
	unmountOrDie(t, mnt)

	// A writable mount: the tree is read-only all the same, the merged view writable.
	upper := filepath.Join(dir, "upper")
	mnt = mountImage(t, archive, "--layers", "--upper", upper)
	checkTreeRefusesWrites(t, mnt, filepath.Join(treeDir, "layers", layerDirName(1, digests[1]), "etc/keep"), unix.EROFS)
	if err := os.Mkdir(filepath.Join(mnt, treeDir), 0o755); !errors.Is(err, unix.EEXIST) {
		t.Errorf("mkdir /%s: %v", treeDir, err)
	}
	if err := os.Rename(filepath.Join(mnt, treeDir), filepath.Join(mnt, "moved")); !errors.Is(err, unix.EPERM) {
		t.Errorf("rename /%s: %v", treeDir, err)
	}
	if err := os.Rename(filepath.Join(mnt, "etc/keep"), filepath.Join(mnt, treeDir)); err == nil {
		t.Errorf("rename onto /%s succeeded", treeDir) // the kernel says EEXIST or EISDIR, the view EPERM
	}
	if err := os.RemoveAll(filepath.Join(mnt, treeDir)); err == nil {
		t.Errorf("rm -rf /%s succeeded", treeDir)
	}
	if st, err := os.Stat(filepath.Join(mnt, treeDir, "layers", layerDirName(0, digests[0]), "etc/motd")); err != nil || st.Size() == 0 {
		t.Errorf("after the refused changes, layer 1's etc/motd: %v %v", st, err)
	}
	if err := unix.Lsetxattr(filepath.Join(mnt, "etc/keep"), xattrLayer, []byte("1"), 0); !errors.Is(err, unix.EPERM) {
		t.Errorf("setxattr %s: %v", xattrLayer, err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "etc/new"), []byte("new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "etc/keep"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"etc/new", "etc/keep"} {
		if lay, _ := getxattr(t, filepath.Join(mnt, p), xattrLayer); lay != "upper" {
			t.Errorf("%s: %s = %q, want upper", p, xattrLayer, lay)
		}
	}
	unmountOrDie(t, mnt)
	ents, err := os.ReadDir(upper)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "etc" {
			t.Errorf("the upper directory holds %s", e.Name())
		}
	}

	// Export and commit of that upper directory: the changes, nothing of the tree.
	exported := filepath.Join(dir, "export.tar")
	if _, stderr, code := imgfs(t, "export", "-q", "--cache-dir", cacheDir, "--upper", upper, "-o", exported, archive); code != 0 {
		t.Fatalf("export: %s", stderr)
	}
	names := tarNames(t, exported)
	if strings.Contains(strings.Join(names, "\n"), treeDir) || !contains(names, "etc/new") || contains(names, "etc/motd") {
		t.Errorf("export lists %q", names)
	}
	committed := filepath.Join(dir, "commit.tar")
	if _, stderr, code := imgfs(t, "commit", "-q", "--cache-dir", cacheDir, "--upper", upper, "--compression", "none", "-o", committed, archive); code != 0 {
		t.Fatalf("commit: %s", stderr)
	}
	top := topLayer(t, committed)
	if got := strings.Join(top, " "); got != "etc/ etc/keep etc/new" {
		t.Errorf("the committed layer holds %q, want etc/ etc/keep etc/new", got)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.TrimSuffix(x, "/") == s {
			return true
		}
	}
	return false
}

// tarNames lists the member names of a tar file.
func tarNames(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return readTarNames(t, f)
}

func readTarNames(t *testing.T, r io.Reader) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			sort.Strings(names)
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}

// topLayer lists the members of the last layer of a docker-save archive with uncompressed layers.
func topLayer(t *testing.T, archive string) []string {
	t.Helper()
	files := map[string][]byte{}
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			files[h.Name] = b
		}
	}
	var man []struct{ Layers []string }
	if err := json.Unmarshal(files["manifest.json"], &man); err != nil || len(man) != 1 || len(man[0].Layers) == 0 {
		t.Fatalf("manifest.json of %s: %v", archive, err)
	}
	layer := files[man[0].Layers[len(man[0].Layers)-1]]
	return readTarNames(t, bytes.NewReader(layer))
}

// TestLayerTreeSparse: a sparse member under layers/ keeps its holes (st_blocks, SEEK_DATA/SEEK_HOLE),
// as tar --sparse -x leaves it.
func TestLayerTreeSparse(t *testing.T) {
	requireFUSE(t)
	dir := t.TempDir()
	src, oracle := filepath.Join(dir, "src"), filepath.Join(dir, "oracle")
	for _, d := range []string{src, oracle, filepath.Join(src, "d")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	makeSparse(t, filepath.Join(src, "d", "sparse"))
	layer := filepath.Join(dir, "layer.tar")
	run(t, "tar", "--sparse", "--sparse-version=1.0", "--format=posix", "-cf", layer, "-C", src, ".")
	run(t, "tar", "--sparse", "-xpf", layer, "-C", oracle)
	archive := filepath.Join(dir, "sparse.tar")
	if _, stderr, code := imgfs(t, "import", "--quiet", "-o", archive, layer); code != 0 {
		t.Fatalf("import: exit %d: %s", code, stderr)
	}
	mnt := mountImage(t, archive, "--layers")
	ents, err := os.ReadDir(filepath.Join(mnt, treeDir, "layers"))
	if err != nil || len(ents) != 1 {
		t.Fatalf("layers/: %v %v", ents, err)
	}
	want := filepath.Join(oracle, "d", "sparse")
	got := filepath.Join(mnt, treeDir, "layers", ents[0].Name(), "d", "sparse")
	if b, w := blocks(t, got), blocks(t, want); b != w {
		t.Errorf("st_blocks %d under layers/, %d extracted", b, w)
	}
	if why := sameSparse(t, want, got); why != "" {
		t.Errorf("layers/: %s", why)
	}
}

// TestLayerTreeNameTaken: an image with its own /.imgfs keeps it in the merged view; the tree moves
// to .imgfs-1, the mount says so, and the root's user.imgfs.tree names it; --layers-name picks a name
// and refuses one the image uses.
func TestLayerTreeNameTaken(t *testing.T) {
	requireFUSE(t)
	_, archive := writeArchive(t, []tartest.Member{tartest.File(".imgfs", "the image's own\n"), tartest.File("f", "f")})
	mnt := t.TempDir()
	_, stderr, code := imgfs(t, "mount", "--quiet", "--cache-dir", cacheDir, "--layers", archive, mnt)
	if code != 0 {
		t.Fatalf("mount: exit %d: %s", code, stderr)
	}
	t.Cleanup(func() { unmountOrDie(t, mnt) })
	t.Logf("mount says: %s", stderr)
	if !strings.Contains(stderr, ".imgfs-1") {
		t.Errorf("the mount does not say where the tree is: %q", stderr)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, ".imgfs")); err != nil || string(b) != "the image's own\n" {
		t.Errorf("the image's /.imgfs: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(mnt, ".imgfs-1", "layers")); err != nil {
		t.Errorf("the tree at .imgfs-1: %v", err)
	}
	if name, _ := getxattr(t, mnt, "user.imgfs.tree"); name != ".imgfs-1" {
		t.Errorf("user.imgfs.tree = %q", name)
	}
	out, err := exec.Command("ls", "-a", mnt).Output()
	if err != nil || strings.Contains(string(out), ".imgfs-1") || !strings.Contains(string(out), ".imgfs") {
		t.Errorf("ls -a: %q %v", out, err)
	}
	unmountOrDie(t, mnt)

	_, stderr, code = imgfs(t, "mount", "--quiet", "--cache-dir", cacheDir, "--layers-name", ".imgfs", archive, mnt)
	t.Logf("refused: %s", stderr)
	if code == 0 || !strings.Contains(stderr, "/.imgfs") || strings.Count(stderr, "\n") != 1 {
		unmountOrDie(t, mnt)
		t.Errorf("--layers-name of a name the image has: exit %d: %s", code, stderr)
	}
	mnt = mountImage(t, archive, "--layers-name", "evidence")
	if _, err := os.Stat(filepath.Join(mnt, "evidence", "image", "config.json")); err != nil {
		t.Errorf("--layers-name evidence: %v", err)
	}
}

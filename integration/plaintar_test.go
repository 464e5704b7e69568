package integration

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgfs/imgfs/internal/tartest"
)

// extractLenient is extract for tars GNU tar partly refuses (members with ".."): it skips those
// members, says so and exits 2; what it extracted is the oracle.
func extractLenient(t *testing.T, tarball string) string {
	t.Helper()
	dst := t.TempDir()
	out, err := exec.Command("tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", tarball, "-C", dst).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 2) {
		t.Fatalf("tar -x %s: %v\n%s", tarball, err, out)
	}
	return dst
}

// compressed writes tarball compressed with gzip or zstd beside a temporary directory and returns it.
func compressed(t *testing.T, tarball, comp string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(tarball)+map[string]string{"gzip": ".gz", "zstd": ".zst"}[comp])
	switch comp {
	case "gzip":
		run(t, "sh", "-c", `pigz -p 2 -c "$1" > "$2"`, "sh", tarball, out)
	case "zstd":
		run(t, "zstd", "-q", "-T2", "-o", out, tarball)
	}
	return out
}

// mountStack mounts sources as a stack (bottom first) and returns the mount point; unmounted at cleanup.
func mountStack(t *testing.T, sources ...string) string {
	t.Helper()
	requireFUSE(t)
	mnt := t.TempDir()
	args := append(append([]string{"mount", "--quiet", "--cache-dir", cacheDir}, sources...), mnt)
	if _, stderr, code := imgfs(t, args...); code != 0 {
		t.Fatalf("imgfs %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	t.Cleanup(func() { unmountOrDie(t, mnt) })
	if !isMountpoint(mnt) {
		t.Fatalf("imgfs mount returned but %s is not a mount point", mnt)
	}
	return mnt
}

// TestPlainTarCorpus mounts the corpus's flat exports as plain tarballs (bare, gzip, zstd) and compares
// every path with tar -x of the same tarball: types, modes, owners, sizes, mtimes, link targets, hard
// link sets, xattrs and content hashes.
func TestPlainTarCorpus(t *testing.T) {
	requireTool(t, "pigz")
	requireTool(t, "zstd")
	exports := filepath.Join(corpusDir(t), "artifacts", "export")
	cases := []struct{ file, comp string }{
		{"debian-layered-l3-export.tar", ""},
		{"crane-export.tar", ""},
		{"docker-export-20.10.tar", "gzip"},
		{"debian-layered-l3-export.tar", "zstd"},
	}
	for _, c := range cases {
		t.Run(c.file+"/"+c.comp, func(t *testing.T) {
			src := filepath.Join(exports, c.file)
			want := walkTree(t, extract(t, src), true)
			arg := src
			if c.comp != "" {
				arg = compressed(t, src, c.comp)
			}
			mnt := mountImage(t, arg)
			compareTrees(t, want, walkTree(t, mnt, true), true)
		})
	}
}

// hostileMembers is a root filesystem tar with the members a backup or a hostile sender may hold.
func hostileMembers() []tartest.Member {
	return []tartest.Member{
		tartest.Dir("etc"),
		{Name: "etc/passwd", Body: []byte("root:x:0:0::/root:/bin/sh\n"), Mode: 0o4755, UID: 1234, GID: 5678},
		{Name: "etc/attrs", Body: []byte("x"), Xattrs: map[string]string{"user.note": "kept", "security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}},
		tartest.File("../evil", "outside"),
		tartest.File("etc/../../evil2", "outside"),
		tartest.File("/abs/file", "absolute name"),
		tartest.File("./dot/file", "dot prefix"),
		tartest.Symlink("etc/abs-link", "/etc/shadow"),
		tartest.Symlink("etc/up-link", "../../../../../root"),
		{Name: "etc/passwd", Body: []byte("second copy wins\n"), Mode: 0o4750, UID: 1234, GID: 5678},
		{Name: "etc/hard-abs", Type: tar.TypeLink, Linkname: "/etc/passwd"},
		{Name: "etc/fifo", Type: tar.TypeFifo, Mode: 0o600},
	}
}

// TestPlainTarHostile mounts a hostile tarball (bare, gzip, zstd) and compares it with tar -x: ".."
// members dropped, absolute names rooted, link targets verbatim, absolute hard links inside.
func TestPlainTarHostile(t *testing.T) {
	requireTool(t, "pigz")
	requireTool(t, "zstd")
	src := filepath.Join(t.TempDir(), "hostile.tar")
	if err := os.WriteFile(src, tartest.Tar(t, hostileMembers()...), 0o644); err != nil {
		t.Fatal(err)
	}
	want := walkTree(t, extractLenient(t, src), true)
	for _, n := range []string{"evil", "evil2"} {
		if _, ok := want[n]; ok {
			t.Fatalf("oracle extracted %s: tar is not the oracle this test assumes", n)
		}
	}
	if want["etc/hard-abs"] == nil || want["etc/hard-abs"].linkSet != "etc/hard-abs,etc/passwd" {
		t.Fatalf("oracle: hard-abs is %+v", want["etc/hard-abs"])
	}
	for _, comp := range []string{"", "gzip", "zstd"} {
		t.Run("comp="+comp, func(t *testing.T) {
			arg := src
			if comp != "" {
				arg = compressed(t, src, comp)
			}
			mnt := mountImage(t, arg)
			compareTrees(t, want, walkTree(t, mnt, true), true)
			if _, err := os.Stat(filepath.Join(filepath.Dir(mnt), "evil")); err == nil {
				t.Error("a file appeared beside the mount point")
			}
		})
	}
}

// TestPlainTarGarbage: what is not a tar is refused with one line naming the file.
func TestPlainTarGarbage(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string][]byte{
		"text.tar": []byte(strings.Repeat("not a tar at all\n", 100)),
		"empty":    nil,
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := imgfs(t, "inspect", "--quiet", "--cache-dir", cacheDir, p)
		if code == 0 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, p) ||
			!strings.Contains(stderr, "not an image archive or a tar") {
			t.Errorf("%s: exit %d, stderr %q", name, code, stderr)
		}
	}
}

// TestPlainTarCommit writes into a mount of a plain .tar.gz, commits it as an OCI archive and checks the
// result with skopeo (the base layer is the gzip file itself, byte for byte, as a gzip layer) and umoci
// (its unpack equals the mount); export of the same mount equals it too.
func TestPlainTarCommit(t *testing.T) {
	requireTool(t, "skopeo")
	requireTool(t, "umoci")
	requireTool(t, "pigz")
	dir := t.TempDir()
	src := filepath.Join(dir, "rootfs.tar")
	if err := os.WriteFile(src, tartest.Tar(t, tartest.Dir("etc"), tartest.File("etc/a", "a\n"), tartest.File("etc/b", "b\n"),
		tartest.Dir("srv"), tartest.File("srv/keep", "keep\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	gz := compressed(t, src, "gzip")
	upper := filepath.Join(dir, "upper")
	mnt := mountImage(t, gz, "--upper", upper)
	if err := os.WriteFile(filepath.Join(mnt, "etc/new"), []byte("new\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(mnt, "etc/b")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(mnt, "srv/sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	view := walkTree(t, mnt, true)
	unmountOrDie(t, mnt)

	out := filepath.Join(dir, "out.tar")
	if _, stderr, code := imgfs(t, "commit", "--quiet", "--cache-dir", cacheDir, "--upper", upper, "--format", "oci-archive", "-o", out, gz); code != 0 {
		t.Fatalf("commit: exit %d: %s", code, stderr)
	}
	raw, err := exec.Command("skopeo", "inspect", "--raw", "oci-archive:"+out).Output()
	if err != nil {
		t.Fatalf("skopeo inspect: %v", err)
	}
	var m struct {
		Layers []struct{ MediaType, Digest string }
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	gzBytes, err := os.ReadFile(gz)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(gzBytes)
	if len(m.Layers) != 2 || m.Layers[0].Digest != "sha256:"+hex.EncodeToString(sum[:]) ||
		m.Layers[0].MediaType != "application/vnd.oci.image.layer.v1.tar+gzip" {
		t.Fatalf("layers %+v: want the gzip file itself as the first", m.Layers)
	}
	layout := filepath.Join(dir, "layout")
	run(t, "skopeo", "copy", "-q", "oci-archive:"+out, "oci:"+layout+":x")
	bundle := filepath.Join(dir, "bundle")
	run(t, "umoci", "unpack", "--image", layout+":x", bundle)
	compareTrees(t, view, walkTree(t, filepath.Join(bundle, "rootfs"), true), true)

	flat := filepath.Join(dir, "flat.tar")
	if _, stderr, code := imgfs(t, "export", "--quiet", "--cache-dir", cacheDir, "--upper", upper, "-o", flat, gz); code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	compareTrees(t, view, walkTree(t, extract(t, flat), true), true)
}

// applyLayer is the oracle of a stack: it applies a layer, extracted by tar -x with its whiteout files,
// to the tree below by the OCI rules: an opaque marker hides every lower entry of its directory, a
// ".wh.NAME" hides NAME and what lies under it, then the layer's own entries replace the lower ones (a
// non-directory over a directory hides the directory's contents). Markers are never shown.
func applyLayer(lower, layer map[string]*node) map[string]*node {
	out := map[string]*node{}
	for p, n := range lower {
		out[p] = n
	}
	under := func(dir string) {
		for p := range out {
			if dir == "" || strings.HasPrefix(p, dir+"/") {
				delete(out, p)
			}
		}
	}
	for p := range layer {
		dir, base := path.Dir(p), path.Base(p)
		if dir == "." {
			dir = ""
		}
		switch {
		case base == ".wh..wh..opq":
			under(dir)
		case strings.HasPrefix(base, ".wh."):
			hidden := path.Join(dir, strings.TrimPrefix(base, ".wh."))
			delete(out, hidden)
			under(hidden)
		}
	}
	for p, n := range layer {
		if strings.HasPrefix(path.Base(p), ".wh.") {
			continue
		}
		if n.Type != "dir" {
			under(p)
		}
		out[p] = n
	}
	return out
}

// TestStackPlainTars mounts two plain tarballs as a stack, the second with whiteouts, an opaque directory
// and a type change, and compares it with the oracle: tar -x of the first, the second applied.
func TestStackPlainTars(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "base.tar")
	b := filepath.Join(dir, "app.tar")
	write := func(p string, ms ...tartest.Member) {
		if err := os.WriteFile(p, tartest.Tar(t, ms...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(a, tartest.Dir("etc"), tartest.File("etc/a", "a\n"), tartest.File("etc/b", "b\n"),
		tartest.Dir("etc/conf.d"), tartest.File("etc/conf.d/one", "1\n"), tartest.File("etc/conf.d/two", "2\n"),
		tartest.Dir("var"), tartest.Dir("var/cache"), tartest.File("var/cache/big", strings.Repeat("x", 100000)),
		tartest.Dir("srv"), tartest.File("srv/was-file", "file\n"), tartest.Dir("srv/was-dir"), tartest.File("srv/was-dir/inner", "in\n"))
	write(b, tartest.Dir("etc"), tartest.Whiteout("etc", "a"), tartest.File("etc/app", "app\n"),
		tartest.Dir("etc/conf.d"), tartest.Opaque("etc/conf.d"), tartest.File("etc/conf.d/mine", "mine\n"),
		tartest.Dir("var"), tartest.Whiteout("var", "cache"),
		tartest.Dir("srv"), tartest.Dir("srv/was-file"), tartest.File("srv/was-file/now-dir", "d\n"),
		tartest.Symlink("srv/was-dir", "/elsewhere"))
	want := applyLayer(walkTree(t, extract(t, a), true), walkTree(t, extract(t, b), true))
	if want["etc/a"] != nil || want["etc/conf.d/one"] != nil || want["var/cache"] != nil || want["srv/was-dir"].Type != "symlink" {
		t.Fatal("the oracle did not apply the whiteouts")
	}
	mnt := mountStack(t, a, b)
	compareTrees(t, want, walkTree(t, mnt, true), true)
}

// TestStackImageAndTarball stacks a tarball on a corpus image archive: the image's layers, then the
// tarball's whiteouts and files, compared with umoci's unpack of the image with the tarball applied.
func TestStackImageAndTarball(t *testing.T) {
	corpus := corpusDir(t)
	unpacked := filepath.Join(corpus, "build", "unpack-l3", "rootfs")
	base := walkTree(t, unpacked, true)
	if base["etc/os-release"] == nil || base["usr/share"] == nil {
		t.Fatal("corpus l3 unpack lacks etc/os-release or usr/share")
	}
	top := filepath.Join(t.TempDir(), "top.tar")
	if err := os.WriteFile(top, tartest.Tar(t, tartest.Dir("etc"), tartest.Whiteout("etc", "os-release"),
		tartest.File("etc/added", "added\n"), tartest.Dir("usr"), tartest.Dir("usr/share"), tartest.Opaque("usr/share"),
		tartest.File("usr/share/only", "only\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	want := applyLayer(base, walkTree(t, extract(t, top), true))
	mnt := mountStack(t, filepath.Join(corpus, "artifacts", "debian-layered", "docker-save-20.10.tar"), top)
	compareTrees(t, want, walkTree(t, mnt, true), true)
}

// TestStackCommit commits a writable mount of a stack (an image archive's layers, then a tarball): the
// output holds every layer of the stack and the upper one, in order, and umoci's unpack equals the mount.
func TestStackCommit(t *testing.T) {
	requireTool(t, "skopeo")
	requireTool(t, "umoci")
	dir := t.TempDir()
	a := filepath.Join(dir, "a.tar")
	b := filepath.Join(dir, "b.tar")
	if err := os.WriteFile(a, tartest.Tar(t, tartest.Dir("etc"), tartest.File("etc/a", "a\n"), tartest.File("etc/b", "b\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, tartest.Tar(t, tartest.Dir("etc"), tartest.Whiteout("etc", "a"), tartest.File("etc/c", "c\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	// The bottom is an image archive (a commit of a), so the stack mixes both kinds.
	base := filepath.Join(dir, "base.tar")
	if _, stderr, code := imgfs(t, "import", "--quiet", "-o", base, a); code != 0 {
		t.Fatalf("import: exit %d: %s", code, stderr)
	}
	upper := filepath.Join(dir, "upper")
	mnt := mountStack(t, "--upper", upper, base, b)
	if err := os.WriteFile(filepath.Join(mnt, "etc/d"), []byte("d\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	view := walkTree(t, mnt, true)
	if view["etc/a"] != nil || view["etc/b"] == nil || view["etc/c"] == nil {
		t.Fatalf("the stack is not the union: %v", view)
	}
	unmountOrDie(t, mnt)
	out := filepath.Join(dir, "out.tar")
	if _, stderr, code := imgfs(t, "commit", "--quiet", "--cache-dir", cacheDir, "--upper", upper, "--format", "oci-archive", "-o", out, base, b); code != 0 {
		t.Fatalf("commit: exit %d: %s", code, stderr)
	}
	raw, err := exec.Command("skopeo", "inspect", "oci-archive:"+out).Output()
	if err != nil {
		t.Fatalf("skopeo inspect: %v", err)
	}
	var info struct{ Layers []string }
	if err := json.Unmarshal(raw, &info); err != nil {
		t.Fatal(err)
	}
	bBytes, _ := os.ReadFile(b)
	sum := sha256.Sum256(bBytes)
	if len(info.Layers) != 3 || info.Layers[1] != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Fatalf("layers %v: want the image's, the tarball itself, the upper", info.Layers)
	}
	layout := filepath.Join(dir, "layout")
	run(t, "skopeo", "copy", "-q", "oci-archive:"+out, "oci:"+layout+":x")
	bundle := filepath.Join(dir, "bundle")
	run(t, "umoci", "unpack", "--image", layout+":x", bundle)
	compareTrees(t, view, walkTree(t, filepath.Join(bundle, "rootfs"), true), true)
}

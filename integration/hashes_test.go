package integration

import (
	"archive/tar"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/imgfs/imgfs/internal/tartest"
)

// writeHashdiffArchive writes a docker-save archive of uncompressed layers, bottom first, and returns
// the layers' diff IDs.
func writeHashdiffArchive(t *testing.T, path, tag string, layers ...[]byte) []digest.Digest {
	t.Helper()
	var ids []digest.Digest
	var names []string
	ms := []tartest.Member{}
	for _, l := range layers {
		d := digest.FromBytes(l)
		ids = append(ids, d)
		name := d.Encoded() + "/layer.tar"
		if slices.Contains(names, name) {
			continue
		}
		names = append(names, name)
		ms = append(ms, tartest.File(name, string(l)))
	}
	cfg := mustJSON(t, map[string]any{
		"architecture": "amd64", "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": ids},
	})
	cfgName := digest.FromBytes(cfg).Encoded() + ".json"
	var layerNames []string
	for _, d := range ids {
		layerNames = append(layerNames, d.Encoded()+"/layer.tar")
	}
	man := mustJSON(t, []any{map[string]any{"Config": cfgName, "RepoTags": []string{tag}, "Layers": layerNames}})
	ms = append(ms, tartest.File(cfgName, string(cfg)), tartest.File("manifest.json", string(man)))
	if err := os.WriteFile(path, tartest.Tar(t, ms...), 0o644); err != nil {
		t.Fatal(err)
	}
	return ids
}

// hashdeepAudit runs hashdeep in dir with args and returns its output and whether it said
// "Audit passed" (and exited 0).
func hashdeepAudit(t *testing.T, dir string, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command("hashdeep", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	passed := strings.Contains(string(out), "hashdeep: Audit passed")
	if passed != (err == nil) {
		t.Fatalf("hashdeep %s: says passed=%v but exits %v:\n%s", strings.Join(args, " "), passed, err, out)
	}
	return string(out), passed
}

// hashesLayers is a two-layer image without symlinks, FIFOs or devices (which hashdeep without -o f
// follows or opens), with names hashdeep must take as they are.
func hashesLayers(t *testing.T) (l1, l2 []byte) {
	l1 = tartest.Tar(t,
		tartest.Dir("etc"),
		tartest.File("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
		tartest.File("etc/gone", "whited out\n"),
		tartest.File("with space", "a b\n"),
		tartest.File("com,ma, and more", "commas\n"),
		tartest.File("üñí ćødé", "unicode\n"),
		tartest.File("empty", ""),
		tartest.Member{Name: "bin/tool", Body: []byte("#!/bin/sh\necho\n"), Mode: 0o755},
		tartest.File("same-a", "duplicate content\n"),
		tartest.File("same-b", "duplicate content\n"),
	)
	l2 = tartest.Tar(t,
		tartest.Whiteout("etc", "gone"),
		tartest.File("etc/shadow", "root:*:1::::::\n"),
		tartest.Hardlink("etc/shadow-link", "etc/shadow"),
		tartest.File("with space", "replaced\n"),
		tartest.Member{Name: "big.bin", Body: []byte(strings.Repeat("0123456789abcdef", 1<<20))}, // 16 MiB
	)
	return l1, l2
}

// TestHashesAudit: hashdeep audits a mount of the image against imgfs's list and says "Audit passed",
// with absolute names (--root MNT, hashdeep -r MNT) and relative ones (hashdeep -l -r . in the mount);
// after a file changes in a writable mount's upper directory, or a file is added, the audit fails.
func TestHashesAudit(t *testing.T) {
	requireFUSE(t)
	requireTool(t, "hashdeep")
	dir := t.TempDir()
	archive := filepath.Join(dir, "img.tar")
	l1, l2 := hashesLayers(t)
	writeHashdiffArchive(t, archive, "hashes:latest", l1, l2)

	mnt := mountImage(t, archive)
	abs := filepath.Join(dir, "abs.hashdeep")
	if _, stderr, code := imgfs(t, "hashes", "-q", "--cache-dir", cacheDir, "--root", mnt, "-o", abs, archive); code != 0 {
		t.Fatalf("hashes: exit %d: %s", code, stderr)
	}
	rel := filepath.Join(dir, "rel.hashdeep")
	if _, stderr, code := imgfs(t, "hashes", "-q", "--cache-dir", cacheDir, "-o", rel, archive); code != 0 {
		t.Fatalf("hashes: exit %d: %s", code, stderr)
	}
	if out, ok := hashdeepAudit(t, "/", "-a", "-vv", "-k", abs, "-r", mnt); !ok {
		t.Fatalf("hashdeep -a -k LIST -r MNT over the mount:\n%s", out)
	}
	if out, ok := hashdeepAudit(t, mnt, "-l", "-a", "-vv", "-k", rel, "-r", "."); !ok {
		t.Fatalf("hashdeep -l -a -k LIST -r . in the mount:\n%s", out)
	}
	// The list names every file the mount has: 11 regular names (the hard link under both).
	if b, _ := os.ReadFile(abs); strings.Count(string(b), ","+mnt+"/") != 11 {
		t.Fatalf("list has %d records, want 11:\n%s", strings.Count(string(b), ","+mnt+"/"), b)
	}
	// Another root does not audit (names are matched in full).
	if out, ok := hashdeepAudit(t, "/", "-a", "-k", rel, "-r", mnt); ok {
		t.Fatalf("relative names audited an absolute walk:\n%s", out)
	}

	// A writable mount whose upper directory changes one file: the audit fails on it.
	upper := filepath.Join(dir, "upper")
	wmnt := mountImage(t, archive, "--upper", upper)
	wlist := filepath.Join(dir, "w.hashdeep")
	if _, stderr, code := imgfs(t, "hashes", "-q", "--cache-dir", cacheDir, "--root", wmnt, "-o", wlist, archive); code != 0 {
		t.Fatalf("hashes: exit %d: %s", code, stderr)
	}
	if out, ok := hashdeepAudit(t, "/", "-a", "-k", wlist, "-r", wmnt); !ok {
		t.Fatalf("writable mount before any change:\n%s", out)
	}
	if err := os.WriteFile(filepath.Join(wmnt, "etc/passwd"), []byte("root:x:0:0::/root:/bin/bash\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(upper, "etc/passwd")); err != nil {
		t.Fatalf("the change is not in the upper directory: %v", err)
	}
	out, ok := hashdeepAudit(t, "/", "-a", "-vv", "-k", wlist, "-r", wmnt)
	if ok || !strings.Contains(out, "Known files not found: 1") {
		t.Fatalf("audit after a changed file:\n%s", out)
	}
	if err := os.WriteFile(filepath.Join(wmnt, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, ok := hashdeepAudit(t, "/", "-a", "-k", wlist, "-r", wmnt); !ok {
		t.Fatalf("content restored, audit still fails:\n%s", out)
	}
	if err := os.WriteFile(filepath.Join(wmnt, "new"), []byte("dropped\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, ok := hashdeepAudit(t, "/", "-a", "-vv", "-k", wlist, "-r", wmnt); ok || !strings.Contains(out, "New files found: 1") {
		t.Fatalf("audit after an added file:\n%s", out)
	}
}

// TestHashesAuditSymlinksAndSpecials: over an image with symlinks (one to a host path), a FIFO and a
// device, `hashdeep -o f -a` (regular files only, symlinks not followed: the README's command)
// passes, and a name with a newline is a comment, warned about.
func TestHashesAuditSymlinksAndSpecials(t *testing.T) {
	requireFUSE(t)
	requireTool(t, "hashdeep")
	dir := t.TempDir()
	archive := filepath.Join(dir, "img.tar")
	l1, l2 := hashesLayers(t)
	l3 := tartest.Tar(t,
		tartest.Symlink("abs-link", "/etc/hostname"),
		tartest.Symlink("rel-link", "etc/passwd"),
		tartest.Symlink("dir-link", "etc"),
		tartest.Symlink("dangling", "nowhere"),
		tartest.Member{Name: "fifo", Type: tar.TypeFifo},
		tartest.Member{Name: "null", Type: tar.TypeChar, Devmajor: 1, Devminor: 3},
		tartest.File("nl\nname", "newline\n"),
	)
	writeHashdiffArchive(t, archive, "hashes:specials", l1, l2, l3)
	mnt := mountImage(t, archive)
	list := filepath.Join(dir, "list")
	_, stderr, code := imgfs(t, "hashes", "-q", "--cache-dir", cacheDir, "--root", mnt, "-o", list, archive)
	if code != 0 {
		t.Fatalf("hashes: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "newline in the name") {
		t.Errorf("no warning about the name with a newline: %s", stderr)
	}
	b, _ := os.ReadFile(list)
	if !strings.Contains(string(b), `## skipped (newline in the name): 8,`) || !strings.Contains(string(b), `"`+mnt+`/nl\nname"`) {
		t.Errorf("no skipped comment for the name with a newline:\n%s", b)
	}
	// The name with a newline is a new file to hashdeep: it cannot be in a list it reads.
	out, ok := hashdeepAudit(t, "/", "-o", "f", "-a", "-vv", "-k", list, "-r", mnt)
	if ok || !strings.Contains(out, "New files found: 1") || !strings.Contains(out, "Files matched: 11") {
		t.Fatalf("hashdeep -o f -a over the mount:\n%s", out)
	}
	// Without it the audit passes.
	archive = filepath.Join(dir, "img2.tar")
	writeHashdiffArchive(t, archive, "hashes:specials", l1, l2, tartest.Tar(t,
		tartest.Symlink("abs-link", "/etc/hostname"), tartest.Symlink("rel-link", "etc/passwd"),
		tartest.Symlink("dir-link", "etc"), tartest.Symlink("dangling", "nowhere"),
		tartest.Member{Name: "fifo", Type: tar.TypeFifo}, tartest.Member{Name: "null", Type: tar.TypeChar, Devmajor: 1, Devminor: 3}))
	mnt2 := mountImage(t, archive)
	if _, stderr, code := imgfs(t, "hashes", "-q", "--cache-dir", cacheDir, "--root", mnt2, "-o", list, archive); code != 0 {
		t.Fatalf("hashes: exit %d: %s", code, stderr)
	}
	if out, ok := hashdeepAudit(t, "/", "-o", "f", "-a", "-vv", "-k", list, "-r", mnt2); !ok {
		t.Fatalf("hashdeep -o f -a over the mount:\n%s", out)
	}
}

// TestHashesLayers: --layers writes one list per layer, named by index and diff_id, that audits the
// layer unpacked by tar -x (whiteout marker and hard link included).
func TestHashesLayers(t *testing.T) {
	requireTool(t, "hashdeep")
	dir := t.TempDir()
	archive := filepath.Join(dir, "img.tar")
	l1, l2 := hashesLayers(t)
	ids := writeHashdiffArchive(t, archive, "hashes:latest", l1, l2)
	out := filepath.Join(dir, "lists")
	if _, stderr, code := imgfs(t, "hashes", "-q", "--layers", "--cache-dir", cacheDir, "-o", out, archive); code != 0 {
		t.Fatalf("hashes --layers: exit %d: %s", code, stderr)
	}
	for i, l := range [][]byte{l1, l2} {
		name := filepath.Join(out, "layer-0"+string(rune('1'+i))+"-"+ids[i].Encoded()+".hashdeep")
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "diff_id "+ids[i].String()) {
			t.Errorf("%s does not say which layer it lists:\n%s", name, b)
		}
		unpacked := filepath.Join(dir, "unpacked", ids[i].Encoded())
		if err := os.MkdirAll(unpacked, 0o755); err != nil {
			t.Fatal(err)
		}
		tarFile := filepath.Join(dir, "layer.tar")
		if err := os.WriteFile(tarFile, l, 0o644); err != nil {
			t.Fatal(err)
		}
		if o, err := exec.Command("tar", "-xf", tarFile, "-C", unpacked).CombinedOutput(); err != nil {
			t.Fatalf("tar -x: %v\n%s", err, o)
		}
		if o, ok := hashdeepAudit(t, unpacked, "-o", "f", "-l", "-a", "-vv", "-k", name, "-r", "."); !ok {
			t.Fatalf("layer %d unpacked against %s:\n%s\n%s", i+1, name, o, b)
		}
	}
	if _, stderr, code := imgfs(t, "hashes", "-q", "--layers", "--cache-dir", cacheDir, archive); code == 0 || !strings.Contains(stderr, "-o DIR") {
		t.Errorf("--layers without -o: exit %d: %s", code, stderr)
	}
}

// TestHashesCorpusAudit: the corpus image's list audits its mount with the README's command.
func TestHashesCorpusAudit(t *testing.T) {
	requireTool(t, "hashdeep")
	archive := filepath.Join(corpusDir(t), "artifacts/debian-layered/docker-save-20.10.tar")
	mnt := mountImage(t, archive)
	list := filepath.Join(t.TempDir(), "l3.hashdeep")
	if _, stderr, code := imgfs(t, "hashes", "-q", "--cache-dir", cacheDir, "--root", mnt, "-o", list, archive); code != 0 {
		t.Fatalf("hashes: exit %d: %s", code, stderr)
	}
	out, ok := hashdeepAudit(t, "/", "-o", "f", "-a", "-vv", "-k", list, "-r", mnt)
	if !ok || !strings.Contains(out, "Files matched: 5584") {
		t.Fatalf("hashdeep -o f -a over the corpus mount:\n%s", out)
	}
}

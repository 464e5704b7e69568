package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgfs/imgfs/internal/tartest"
)

// TestExportImportCorpus exports the corpus image (plain and gzip output), checks the flat tar's tree
// against the umoci reference listings through an independent extractor (GNU tar), imports it again,
// and checks the imported image with skopeo + umoci and through an imgfs mount.
func TestExportImportCorpus(t *testing.T) {
	corpus := corpusDir(t)
	requireTool(t, "skopeo")
	requireTool(t, "umoci")
	ref := filepath.Join(corpus, "listings", "debian-layered.l3")
	dir := t.TempDir()
	// Every distinct image of the corpus (l1, l2, l3 and the umoci-made l3), in several formats.
	for _, c := range []struct {
		name, path, image, want string
	}{
		{"oci-gzip", "oci-gzip", "", "l3"},
		{"docker-save-20.10", "docker-save-20.10.tar", "", "l3"},
		{"oci-zstd", "oci-zstd", "", "l3"},
		{"l1", "oci-umoci-src", "l1", "l1"},
		{"l2", "oci-umoci-src", "l2", "l2"},
		{"l3-umoci", "oci-umoci-src", "l3-umoci", "l3-umoci"},
	} {
		t.Run(c.name, func(t *testing.T) {
			flat := filepath.Join(dir, c.name+".flat.tar")
			args := []string{"export", "-q", "--cache-dir", cacheDir, "-o", flat}
			if c.image != "" {
				args = append(args, "--image", c.image)
			}
			_, stderr, code := imgfs(t, append(args, filepath.Join(corpus, "artifacts", "debian-layered", c.path))...)
			if code != 0 {
				t.Fatalf("export: exit %d: %s", code, stderr)
			}
			compareWithReference(t, extract(t, flat), filepath.Join(corpus, "listings", "debian-layered."+c.want))
		})
	}

	// Piped and compressed output.
	gz := filepath.Join(dir, "flat.tar.gz")
	sh := imgfsBin + " export -q --cache-dir " + cacheDir + " --compression gzip " + filepath.Join(corpus, "artifacts", "debian-layered", "oci-gzip") + " > " + gz
	if out, err := exec.Command("sh", "-c", sh).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", sh, err, out)
	}
	compareWithReference(t, extract(t, gz), ref)

	// Import the gzip export (compression detected), then check it with skopeo and umoci.
	imported := filepath.Join(dir, "imported.tar")
	_, stderr, code := imgfs(t, "import", "-q", "-t", "corpus/imported:1", "-m", "from imgfs export", "-c", `CMD ["/bin/bash"]`, "-o", imported, gz)
	if code != 0 {
		t.Fatalf("import: exit %d: %s", code, stderr)
	}
	run(t, "skopeo", "inspect", "docker-archive:"+imported)
	oci := filepath.Join(dir, "imported-oci")
	run(t, "skopeo", "copy", "-q", "docker-archive:"+imported, "oci:"+oci+":latest")
	bundle := filepath.Join(dir, "bundle")
	run(t, "umoci", "unpack", "--image", oci+":latest", bundle)
	compareWithReference(t, filepath.Join(bundle, "rootfs"), ref)
	cfg, err := exec.Command("skopeo", "inspect", "--config", "docker-archive:"+imported).Output()
	if err != nil || !strings.Contains(string(cfg), `"/bin/bash"`) || !strings.Contains(string(cfg), "from imgfs export") {
		t.Errorf("imported config lacks the CMD change or the message: %v\n%s", err, cfg)
	}
	// The imported archive mounts with imgfs and shows the same tree.
	compareWithReference(t, mountImage(t, imported), ref)

	// Import from a pipe, as an OCI layout with zstd: the same tree again.
	ociOut := filepath.Join(dir, "imported-from-pipe")
	sh = "cat " + filepath.Join(dir, "oci-gzip.flat.tar") + " | " + imgfsBin + " import -q --format oci --compression zstd -o " + ociOut + " -"
	if out, err := exec.Command("sh", "-c", sh).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", sh, err, out)
	}
	compareWithReference(t, mountImage(t, ociOut), ref)
}

// TestImportRefuses checks that hostile or broken flat tarballs give one error line and no output.
func TestImportRefuses(t *testing.T) {
	dir, good := writeSample(t, "sample.tar")
	data, _ := os.ReadFile(good)
	cases := map[string][]byte{
		"not-a-tar.tar": []byte(strings.Repeat("this is not a tar archive\n", 100)),
		"truncated.tar": data[:len(data)/2+100],
		"escape.tar":    append(tarOf(t, "../etc/evil", "x"), make([]byte, 1024)...),
		"whiteout.tar":  append(tarOf(t, "etc/.wh.passwd", ""), make([]byte, 1024)...),
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			in := filepath.Join(dir, name)
			os.WriteFile(in, content, 0o644)
			out := filepath.Join(dir, "out-"+name)
			_, stderr, code := imgfs(t, "import", "-q", "-o", out, in)
			if code == 0 {
				t.Fatalf("import %s succeeded", name)
			}
			if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 || !strings.Contains(stderr, name) {
				t.Errorf("want one error line naming %s, got:\n%s", name, stderr)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, "*out-"+name+"*")); len(left) != 0 {
				t.Errorf("import left %v behind", left)
			}
		})
	}
}

// extract unpacks a (maybe compressed) flat tar with GNU tar, as an independent reader of our output.
func extract(t *testing.T, tarball string) string {
	t.Helper()
	dst := t.TempDir()
	run(t, "tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", tarball, "-C", dst)
	return dst
}

func tarOf(t *testing.T, name, body string) []byte {
	t.Helper()
	hdr := tartest.RawHeader(name, '0', int64(len(body)), "")
	b := append(hdr, []byte(body)...)
	if r := len(b) % 512; r != 0 {
		b = append(b, make([]byte, 512-r)...)
	}
	return b
}

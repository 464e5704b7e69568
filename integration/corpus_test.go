package integration

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// corpusCase is one archive of the corpus and the reference view it must show.
type corpusCase struct {
	name  string   // test name
	path  string   // under $CORPUS/artifacts
	flags []string // image selection
	want  string   // reference listing: l1, l2, l3 or l3-umoci (umoci unpack of the same image)
}

func corpusCases() []corpusCase {
	d := "debian-layered/"
	return []corpusCase{
		{"docker-archive-skopeo", d + "docker-archive-skopeo.tar", nil, "l3"},
		{"docker-save-20.10", d + "docker-save-20.10.tar", nil, "l3"},
		{"docker-save-20.10-multi/l2", d + "docker-save-20.10-multi.tar", []string{"--image", "corpus/debian-layered:l2"}, "l2"},
		{"docker-save-20.10-multi/l3", d + "docker-save-20.10-multi.tar", []string{"--image", "corpus/debian-layered:l3"}, "l3"},
		{"podman-docker-archive", d + "podman-docker-archive.tar", nil, "l3"},
		{"podman-docker-archive-multi/l2", d + "podman-docker-archive-multi.tar", []string{"--image", "localhost/corpus/debian-layered:l2"}, "l2"},
		{"podman-docker-archive-multi/latest", d + "podman-docker-archive-multi.tar", []string{"--image", "latest"}, "l3"},
		{"crane-tarball", d + "crane-tarball.tar", nil, "l3"},
		{"crane-legacy", d + "crane-legacy.tar", nil, "l3"},
		{"crane-oci", d + "crane-oci", nil, "l3"},
		{"containerd-export-gzip", d + "containerd-export-gzip.tar", nil, "l3"},
		{"containerd-export-multi/l2", d + "containerd-export-uncompressed-multi.tar", []string{"--image", "docker.io/corpus/debian-layered:l2"}, "l2"},
		{"containerd-export-multi/l3", d + "containerd-export-uncompressed-multi.tar", []string{"--image", "l3"}, "l3"},
		{"oci-archive-skopeo", d + "oci-archive-skopeo.tar", nil, "l3"},
		{"oci-archive-zstd", d + "oci-archive-zstd.tar", nil, "l3"},
		{"podman-oci-archive", d + "podman-oci-archive.tar", nil, "l3"},
		{"podman-oci-dir", d + "podman-oci-dir", nil, "l3"},
		{"oci-gzip", d + "oci-gzip", nil, "l3"},
		{"oci-zstd", d + "oci-zstd", nil, "l3"},
		{"oci-zstd-chunked", d + "oci-zstd-chunked", nil, "l3"},
		{"oci-uncompressed", d + "oci-uncompressed", nil, "l3"},
		{"oci-buildah-uncompressed", d + "oci-buildah-uncompressed", nil, "l3"},
		{"oci-uncompressed-mislabeled", d + "oci-uncompressed-mislabeled-skopeo", nil, "l3"},
		{"oci-nested-index/amd64", d + "oci-nested-index", []string{"--platform", "linux/amd64"}, "l3"},
		{"oci-nested-index/arm64", d + "oci-nested-index", []string{"--platform", "linux/arm64/v8"}, "l3-umoci"},
		{"oci-umoci-src/l1", d + "oci-umoci-src", []string{"--image", "l1"}, "l1"},
		{"oci-umoci-src/l2", d + "oci-umoci-src", []string{"--image", "l2"}, "l2"},
		{"oci-umoci-src/l3", d + "oci-umoci-src", []string{"--image", "l3"}, "l3"},
		{"oci-umoci-src/l3-umoci", d + "oci-umoci-src", []string{"--image", "l3-umoci"}, "l3-umoci"},
		{"docker-import-then-save", "export/docker-import-then-save-20.10.tar", nil, "l3"},
	}
}

// TestCorpusViews mounts every format variant of the corpus image and compares the mounted tree with
// the listing of `umoci unpack` of the same image: paths, types, modes, owners, sizes, link targets,
// xattrs and the sha256 of every file.
func TestCorpusViews(t *testing.T) {
	corpus := corpusDir(t)
	requireTool(t, "getfattr")
	for _, tc := range corpusCases() {
		t.Run(tc.name, func(t *testing.T) {
			archive := filepath.Join(corpus, "artifacts", tc.path)
			if _, err := os.Stat(archive); err != nil {
				t.Fatalf("corpus artifact missing: %v", err)
			}
			mnt := mountImage(t, archive, tc.flags...)
			compareWithReference(t, mnt, filepath.Join(corpus, "listings", "debian-layered."+tc.want))
		})
	}
}

// TestCorpusCompressedArchive mounts whole archives wrapped in gzip and zstd (docker save | gzip).
func TestCorpusCompressedArchive(t *testing.T) {
	corpus := corpusDir(t)
	requireTool(t, "pigz")
	requireTool(t, "zstd")
	src := filepath.Join(corpus, "artifacts", "debian-layered", "docker-archive-skopeo.tar")
	dir := t.TempDir()
	for _, c := range []struct{ name, cmd, ext string }{
		{"gzip", "pigz -c", ".tar.gz"},
		{"zstd", "zstd -q -c -T0", ".tar.zst"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(dir, "archive"+c.ext)
			sh := fmt.Sprintf("%s %q > %q", c.cmd, src, out)
			if b, err := exec.Command("sh", "-c", sh).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v: %s", sh, err, b)
			}
			// A name that says nothing: detection is by content.
			plain := filepath.Join(dir, "archive-"+c.name+".bin")
			if err := os.Rename(out, plain); err != nil {
				t.Fatal(err)
			}
			mnt := mountImage(t, plain)
			compareWithReference(t, mnt, filepath.Join(corpus, "listings", "debian-layered.l3"))
		})
	}
}

// compareWithReference runs the corpus's canonical listing over mnt and compares it with the
// reference files at prefix (.meta.txt, .content.txt, .links.txt, .xattrs.txt).
func compareWithReference(t *testing.T, mnt, prefix string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "view")
	cmd := exec.Command(listingScript(t), mnt, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("listing.sh %s: %v\n%s", mnt, err, b)
	}
	for _, kind := range []string{"meta", "content", "links", "xattrs"} {
		diffFiles(t, kind, prefix+"."+kind+".txt", out+"."+kind+".txt")
	}
}

func listingScript(t *testing.T) string {
	t.Helper()
	if s := os.Getenv("IMGFS_SHARED"); s != "" {
		return filepath.Join(s, "corpus", "listing.sh")
	}
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", "shared", "corpus", "listing.sh")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("listing.sh not found at %s (set IMGFS_SHARED): %v", p, err)
	}
	return p
}

// diffFiles fails with the first differing lines of two listings.
func diffFiles(t *testing.T, kind, wantPath, gotPath string) {
	t.Helper()
	want, err := readLines(wantPath)
	if err != nil {
		t.Fatal(err)
	}
	got, err := readLines(gotPath)
	if err != nil {
		t.Fatal(err)
	}
	wantSet := make(map[string]bool, len(want))
	for _, l := range want {
		wantSet[l] = true
	}
	gotSet := make(map[string]bool, len(got))
	for _, l := range got {
		gotSet[l] = true
	}
	var missing, extra []string
	for _, l := range want {
		if !gotSet[l] {
			missing = append(missing, l)
		}
	}
	for _, l := range got {
		if !wantSet[l] {
			extra = append(extra, l)
		}
	}
	if len(missing) == 0 && len(extra) == 0 && len(want) == len(got) {
		return
	}
	const show = 15
	var b strings.Builder
	fmt.Fprintf(&b, "%s listing differs from the umoci reference (%d lines want, %d got): %d missing, %d extra\n",
		kind, len(want), len(got), len(missing), len(extra))
	for i, l := range missing {
		if i == show {
			fmt.Fprintf(&b, "  ... %d more missing\n", len(missing)-show)
			break
		}
		fmt.Fprintf(&b, "  - %s\n", l)
	}
	for i, l := range extra {
		if i == show {
			fmt.Fprintf(&b, "  ... %d more extra\n", len(extra)-show)
			break
		}
		fmt.Fprintf(&b, "  + %s\n", l)
	}
	t.Error(b.String())
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines, sc.Err()
}

// TestCorpusStat compares every path's full stat (ns mtimes, device numbers, hardlink sets, xattrs)
// with the umoci unpack of l3 kept by the corpus build.
func TestCorpusStat(t *testing.T) {
	corpus := corpusDir(t)
	unpacked := filepath.Join(corpus, "build", "unpack-l3", "rootfs")
	if _, err := os.Stat(unpacked); err != nil {
		t.Fatalf("corpus unpack of l3 missing: %v", err)
	}
	want := walkTree(t, unpacked, false)
	for _, a := range []string{"docker-save-20.10.tar", "oci-gzip", "oci-zstd"} {
		t.Run(a, func(t *testing.T) {
			mnt := mountImage(t, filepath.Join(corpus, "artifacts", "debian-layered", a))
			got := walkTree(t, mnt, false)
			compareTrees(t, want, got, true)
			hl := got["srv/corpus/links/hard-a"]
			if hl == nil || hl.Nlink != 2 || hl.linkSet != "srv/corpus/elsewhere/hard-c,srv/corpus/links/hard-a" {
				t.Errorf("hard-a: want one inode with hard-c, nlink 2; got %+v", hl)
			}
		})
	}
}

// TestWarmRemount checks that a second mount reuses the cached indexes: nothing in the cache is rewritten.
func TestWarmRemount(t *testing.T) {
	corpus := corpusDir(t)
	archive := filepath.Join(corpus, "artifacts", "debian-layered", "oci-gzip")
	mnt := mountImage(t, archive)
	unmountOrDie(t, mnt)
	before := cacheFiles(t)
	if len(before) == 0 {
		t.Fatalf("no files in the cache dir %s after a mount", cacheDir)
	}
	mnt = mountImage(t, archive)
	if _, err := os.Stat(filepath.Join(mnt, "etc", "os-release")); err != nil {
		t.Fatal(err)
	}
	after := cacheFiles(t)
	for name, mt := range before {
		if after[name] != mt {
			t.Errorf("cache file %s was rewritten on a warm mount", name)
		}
	}
}

func cacheFiles(t *testing.T) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	filepath.Walk(cacheDir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.IsDir() && p == filepath.Join(cacheDir, "uses") {
			return filepath.SkipDir // use records note each use (imgfs cache ls): rewritten by design
		}
		if err == nil && info.Mode().IsRegular() {
			out[p] = info.ModTime().UnixNano()
		}
		return nil
	})
	return out
}

package export_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/imgfs/imgfs/archive"
	"github.com/imgfs/imgfs/export"
	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

const (
	corpusDir     = "/var/lib/imgfs-corpus"
	corpusListing = "/work/shared/corpus/listing.sh"
)

// TestExportCorpus exports the three-layer debian image of the corpus (gzip layers, through the whole
// chain from the archive), extracts it with GNU tar and checks that the canonical listings of the tree
// (metadata, contents, symlinks) hash to those of the reference unpacking of the same image.
func TestExportCorpus(t *testing.T) {
	t.Parallel()
	src := filepath.Join(corpusDir, "artifacts/debian-layered/oci-gzip")
	sums := filepath.Join(corpusDir, "listings/debian-layered.l3.sums")
	if _, err := os.Stat(src); err != nil {
		t.Skip("no corpus at " + corpusDir)
	}
	if _, err := os.Stat(corpusListing); err != nil {
		t.Skip("no " + corpusListing)
	}
	if os.Geteuid() != 0 {
		t.Skip("extracting owners needs root")
	}
	if testing.Short() {
		t.Skip("indexes three gzip layers")
	}
	want := readSums(t, sums)

	ctx := context.Background()
	a, err := archive.Open(ctx, src, archive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	img, err := a.Image(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	// The layers are indexed at once, as imgfs does (each pass is one core's work).
	layers := make([]overlay.Layer, len(img.Layers))
	errs := make([]error, len(img.Layers))
	var wg sync.WaitGroup
	for i, l := range img.Layers {
		wg.Go(func() {
			blob, err := l.Blob()
			if err != nil {
				errs[i] = err
				return
			}
			il, err := index.Open(ctx, blob, index.Options{CacheDir: cache, DiffID: l.DiffID, Digest: l.Digest})
			if err != nil {
				errs[i] = err
				return
			}
			layers[i] = il
		})
	}
	wg.Wait()
	for i, err := range errs {
		if l, ok := layers[i].(*index.Layer); ok {
			defer l.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	v, err := overlay.New(layers, overlay.Options{})
	if err != nil {
		t.Fatal(err)
	}

	tmp := t.TempDir()
	out, err := os.Create(filepath.Join(tmp, "export.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	st, err := export.Write(ctx, v, out, export.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := out.Stat(); err != nil || fi.Size() != st.Bytes {
		t.Fatalf("export wrote %d bytes, the file has %v (%v)", st.Bytes, fi.Size(), err)
	}
	t.Logf("%d members, %d bytes", st.Entries, st.Bytes)

	root := filepath.Join(tmp, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	x := exec.Command("tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", out.Name(), "-C", root)
	if msg, err := x.CombinedOutput(); err != nil || len(msg) > 0 {
		t.Fatalf("tar -x: %v\n%s", err, msg)
	}
	msg, err := exec.Command(corpusListing, root).Output()
	if err != nil {
		t.Fatalf("%s: %v", corpusListing, err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(msg)), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			got[f[0]] = f[1]
		}
	}
	for _, k := range []string{"meta", "content", "links"} {
		if got[k] != want[k] || want[k] == "" {
			t.Errorf("%s listing: %s, reference %s", k, got[k], want[k])
		}
	}
}

// readSums reads a listing.sh sums file: "kind sha256 lines" per line.
func readSums(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) >= 2 {
			out[fs[0]] = fs[1]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

package integration

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// sparseSize and sparseData make the test's sparse file: 8 GiB with 172 KiB of data in four extents,
// the last one ending 4 KiB before the end (so the file ends in a hole).
const sparseSize = 8 << 30

var sparseData = []struct{ off, n int64 }{
	{0, 4 << 10},
	{1 << 20, 64 << 10},
	{3 << 30, 100 << 10},
	{sparseSize - 8<<10, 4 << 10},
}

// makeSparse writes the test's sparse file at p.
func makeSparse(t *testing.T, p string) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i, d := range sparseData {
		buf := make([]byte, d.n)
		for j := range buf {
			buf[j] = byte(i + j%251 + 1)
		}
		if _, err := f.WriteAt(buf, d.off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(sparseSize); err != nil {
		t.Fatal(err)
	}
}

// extents returns the data extents of p as lseek's SEEK_DATA and SEEK_HOLE report them.
func extents(t *testing.T, p string) [][2]int64 {
	t.Helper()
	fd, err := unix.Open(p, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var out [][2]int64
	for off := int64(0); ; {
		start, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return out
		}
		if err != nil {
			t.Fatalf("SEEK_DATA %s at %d: %v", p, off, err)
		}
		end, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil {
			t.Fatalf("SEEK_HOLE %s at %d: %v", p, start, err)
		}
		out = append(out, [2]int64{start, end})
		off = end
	}
}

func blocks(t *testing.T, p string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != sparseSize {
		t.Fatalf("%s: size %d, want %d", p, st.Size, sparseSize)
	}
	return st.Blocks
}

func duBytes(t *testing.T, p string) int64 {
	t.Helper()
	out, err := exec.Command("du", "-B1", p).Output()
	if err != nil {
		t.Fatalf("du %s: %v", p, err)
	}
	n, err := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	if err != nil {
		t.Fatalf("du %s: %q", p, out)
	}
	return n
}

// sameSparse reports why sparse file got differs from want, or "": the same extents (SEEK_DATA and
// SEEK_HOLE), which read as zeros between them, and the same bytes in each. Reading the holes would
// mean hashing 8 GiB of zeros per file.
func sameSparse(t *testing.T, want, got string) string {
	t.Helper()
	we, ge := extents(t, want), extents(t, got)
	if !equalExtents(we, ge) {
		return "extents " + fmtExtents(ge) + ", want " + fmtExtents(we)
	}
	wf, err := os.Open(want)
	if err != nil {
		t.Fatal(err)
	}
	defer wf.Close()
	gf, err := os.Open(got)
	if err != nil {
		t.Fatal(err)
	}
	defer gf.Close()
	for _, e := range we {
		a, b := make([]byte, e[1]-e[0]), make([]byte, e[1]-e[0])
		if _, err := wf.ReadAt(a, e[0]); err != nil {
			t.Fatal(err)
		}
		if _, err := gf.ReadAt(b, e[0]); err != nil {
			return "reading: " + err.Error()
		}
		if string(a) != string(b) {
			return "data differs in the extent at " + strconv.FormatInt(e[0], 10)
		}
	}
	return ""
}

func fmtExtents(es [][2]int64) string {
	var b strings.Builder
	for _, e := range es {
		b.WriteString("[" + strconv.FormatInt(e[0], 10) + "," + strconv.FormatInt(e[1], 10) + ")")
	}
	return b.String()
}

// TestSparseFiles mounts an image whose layer GNU tar wrote with --sparse (PAX GNU sparse 1.0) and
// checks the sparse file against the one GNU tar extracts onto ext4: st_blocks and du, the extents
// SEEK_DATA and SEEK_HOLE find, copies by cp that stay sparse, an export that is small and that GNU tar
// extracts to the same content, and a copy-up that stays sparse in the upper directory.
func TestSparseFiles(t *testing.T) {
	requireFUSE(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	oracle := filepath.Join(dir, "oracle")
	for _, d := range []string{src, oracle, filepath.Join(src, "d")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	makeSparse(t, filepath.Join(src, "d", "sparse"))
	layer := filepath.Join(dir, "layer.tar")
	run(t, "tar", "--sparse", "--sparse-version=1.0", "--format=posix", "-cf", layer, "-C", src, ".")
	if fi, err := os.Stat(layer); err != nil || fi.Size() > 1<<20 {
		t.Fatalf("GNU tar wrote a layer of %v bytes (%v): not sparse", fi.Size(), err)
	}
	run(t, "tar", "--sparse", "-xpf", layer, "-C", oracle)
	archive := filepath.Join(dir, "sparse.tar")
	if _, stderr, code := imgfs(t, "import", "--quiet", "-o", archive, layer); code != 0 {
		t.Fatalf("import: exit %d: %s", code, stderr)
	}
	want := filepath.Join(oracle, "d", "sparse")
	wantBlocks, wantDu := blocks(t, want), duBytes(t, want)
	wantExtents := extents(t, want)
	if wantBlocks*512 > 1<<20 {
		t.Fatalf("the oracle's file is not sparse: %d blocks", wantBlocks)
	}

	mnt := mountImage(t, archive)
	got := filepath.Join(mnt, "d", "sparse")
	if b := blocks(t, got); b != wantBlocks {
		t.Errorf("st_blocks %d on the mount, %d extracted", b, wantBlocks)
	}
	if du := duBytes(t, got); du != wantDu {
		t.Errorf("du: %d bytes on the mount, %d extracted", du, wantDu)
	}
	if why := sameSparse(t, want, got); why != "" {
		// Copying or exporting a file without holes would write 8 GiB: stop here.
		t.Fatalf("the mount: %s", why)
	}
	for _, args := range [][]string{{"--sparse=always"}, {"--sparse=auto"}, {"-a"}} {
		dst := filepath.Join(dir, "copy")
		run(t, "cp", append(args, got, dst)...)
		if b := blocks(t, dst); b > 2*wantBlocks {
			t.Errorf("cp %s: the copy has %d blocks, the extracted file %d", args[0], b, wantBlocks)
		}
		if why := sameSparse(t, want, dst); why != "" {
			t.Errorf("cp %s: %s", args[0], why)
		}
		os.Remove(dst)
	}

	out := filepath.Join(dir, "export.tar")
	if _, stderr, code := imgfs(t, "export", "--quiet", "--cache-dir", cacheDir, "-o", out, archive); code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() > 1<<20 {
		t.Errorf("export wrote %d bytes (%v) for %d bytes of data", fi.Size(), err, wantBlocks*512)
	} else {
		lfi, _ := os.Stat(layer)
		t.Logf("export: %d bytes; GNU tar's layer: %d bytes; data: %d bytes", fi.Size(), lfi.Size(), wantBlocks*512)
	}
	ex := filepath.Join(dir, "exported")
	if err := os.Mkdir(ex, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "tar", "--sparse", "-xpf", out, "-C", ex)
	if why := sameSparse(t, want, filepath.Join(ex, "d", "sparse")); why != "" {
		t.Errorf("export extracted by GNU tar: %s", why)
	}
	if b := blocks(t, filepath.Join(ex, "d", "sparse")); b != wantBlocks {
		t.Errorf("export extracted by GNU tar: %d blocks, want %d", b, wantBlocks)
	}
	if names, err := exec.Command("tar", "-tf", out).Output(); err != nil || !strings.Contains(string(names), "d/sparse\n") {
		t.Errorf("GNU tar lists %q (%v), want d/sparse", names, err)
	}

	upper := filepath.Join(dir, "upper")
	wmnt := mountImage(t, archive, "--upper", upper)
	wgot := filepath.Join(wmnt, "d", "sparse")
	if e := extents(t, wgot); !equalExtents(e, wantExtents) {
		t.Errorf("writable mount, lower file: extents %v, want %v", e, wantExtents)
	}
	run(t, "chmod", "0600", wgot) // copies the file up
	if b := blocks(t, filepath.Join(upper, "d", "sparse")); b > 2*wantBlocks {
		t.Errorf("the copied-up file has %d blocks in the upper directory, the extracted file %d", b, wantBlocks)
	}
	if e := extents(t, wgot); !equalExtents(e, wantExtents) {
		t.Errorf("writable mount, copied up: extents %v, want %v", e, wantExtents)
	}
	if b := blocks(t, wgot); b > 2*wantBlocks {
		t.Errorf("writable mount, copied up: %d blocks", b)
	}
	if why := sameSparse(t, want, wgot); why != "" {
		t.Errorf("writable mount, copied up: %s", why)
	}
	// Export with the upper directory: the copied-up file's holes come from the upper file.
	uout := filepath.Join(dir, "export-upper.tar")
	if _, stderr, code := imgfs(t, "export", "--quiet", "--cache-dir", cacheDir, "--upper", upper, "-o", uout, archive); code != 0 {
		t.Fatalf("export --upper: exit %d: %s", code, stderr)
	}
	if fi, err := os.Stat(uout); err != nil || fi.Size() > 1<<20 {
		t.Errorf("export --upper wrote %d bytes (%v)", fi.Size(), err)
	}
	uex := filepath.Join(dir, "exported-upper")
	if err := os.Mkdir(uex, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "tar", "--sparse", "-xpf", uout, "-C", uex)
	if why := sameSparse(t, want, filepath.Join(uex, "d", "sparse")); why != "" {
		t.Errorf("export --upper extracted by GNU tar: %s", why)
	}
}

func equalExtents(a, b [][2]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

package evidence

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/fakelayer"
	"github.com/imgfs/imgfs/internal/tartest"
	"github.com/imgfs/imgfs/overlay"
)

// hashFixture is a two-layer image whose merged view holds what a hash list must get right: names with
// spaces, commas, unicode, a newline and a carriage return, a long path, hard links, empty and big
// files (the big one hashed by the parallel path), symlinks, a FIFO, a device, and a file whited out.
func hashFixture(t *testing.T) (layers []overlay.Layer, files map[string][]byte) {
	t.Helper()
	big := make([]byte, bigFile+3*chunkSize/2+17)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rnd.Uint32())
	}
	long := strings.Repeat("d/", 40) + strings.Repeat("x", 200)
	l1 := []tartest.Member{
		tartest.Dir("etc"),
		tartest.File("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
		tartest.File("etc/gone", "whited out in layer 2\n"),
		tartest.File("with space", "a b\n"),
		tartest.File("com,ma,", "commas\n"),
		tartest.File("üñí ćødé", "unicode\n"),
		tartest.File("nl\nname", "newline\n"),
		tartest.File("cr\rname", "carriage return\n"),
		tartest.File("empty", ""),
		{Name: "big.bin", Body: big},
		tartest.File(long, "deep\n"),
		tartest.Symlink("abs-link", "/etc/hostname"),
		tartest.Symlink("rel-link", "etc/passwd"),
		tartest.Symlink("dir-link", "etc"),
		{Name: "fifo", Type: tar.TypeFifo},
		{Name: "null", Type: tar.TypeChar, Devmajor: 1, Devminor: 3},
	}
	l2 := []tartest.Member{
		tartest.Whiteout("etc", "gone"),
		tartest.File("etc/shadow", "root:*:1::::::\n"),
		tartest.Hardlink("etc/shadow-link", "etc/shadow"),
		tartest.File("with space", "a b, replaced\n"),
	}
	files = map[string][]byte{
		"etc/passwd": []byte("root:x:0:0::/root:/bin/sh\n"), "etc/shadow": []byte("root:*:1::::::\n"),
		"etc/shadow-link": []byte("root:*:1::::::\n"), "with space": []byte("a b, replaced\n"),
		"com,ma,": []byte("commas\n"), "üñí ćødé": []byte("unicode\n"), "nl\nname": []byte("newline\n"),
		"cr\rname": []byte("carriage return\n"), "empty": {}, "big.bin": big, long: []byte("deep\n"),
	}
	return []overlay.Layer{fakelayer.New(l1...), fakelayer.New(l2...)}, files
}

func hashLine(name string, data []byte) string {
	m, s := md5.Sum(data), sha256.Sum256(data)
	return fmt.Sprintf("%d,%s,%s,%s", len(data), hex.EncodeToString(m[:]), hex.EncodeToString(s[:]), name)
}

func writeHashList(t *testing.T, v *overlay.View, opts HashOptions) (string, HashStats) {
	t.Helper()
	var buf bytes.Buffer
	st, err := WriteHashes(context.Background(), v, &buf, opts)
	if err != nil {
		t.Fatal(err)
	}
	return buf.String(), st
}

// TestWriteHashes checks the header byte for byte, every record against the files' own hashes, the
// names under each kind of root, the skipped names and the order, whatever the number of workers.
func TestWriteHashes(t *testing.T) {
	layers, files := hashFixture(t)
	v, err := overlay.New(layers, overlay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	inv := Invocation{Dir: "/work", Args: []string{"imgfs", "hashes", "a.tar"}, Root: true}
	for _, tc := range []struct{ root, prefix string }{
		{"", "./"}, {".", "./"}, {"/mnt/app", "/mnt/app/"}, {"/mnt//app/./x/../", "/mnt/app/"}, {"/", "/"},
		{"mnt/", "mnt/"}, {"./mnt", "./mnt/"},
	} {
		var ref string
		for _, workers := range []int{1, 3, 8} {
			got, st := writeHashList(t, v, HashOptions{Root: tc.root, Invocation: inv, Workers: workers, Comments: []string{"image x"}})
			if ref == "" {
				ref = got
			} else if got != ref {
				t.Fatalf("root %q: %d workers wrote another list than 1:\n%s\nvs\n%s", tc.root, workers, got, ref)
			}
			wantHead := "%%%% HASHDEEP-1.0\n%%%% size,md5,sha256,filename\n## Invoked from: /work\n## # imgfs hashes a.tar\n## \n## image x\n"
			if !strings.HasPrefix(got, wantHead) {
				t.Fatalf("root %q: header:\n%s\nwant:\n%s", tc.root, got[:min(len(got), 300)], wantHead)
			}
			var records, skipped []string
			for _, line := range strings.Split(strings.TrimSuffix(got[len(wantHead):], "\n"), "\n") {
				if strings.HasPrefix(line, "## skipped") {
					skipped = append(skipped, line)
					continue
				}
				records = append(records, line)
			}
			var want, wantSkipped []string
			for name, data := range files {
				if strings.ContainsAny(name, "\r\n") {
					wantSkipped = append(wantSkipped, strings.TrimPrefix(hashLine("", data), "")+fmt.Sprintf("%q", tc.prefix+name))
					continue
				}
				want = append(want, hashLine(tc.prefix+name, data))
			}
			slices.Sort(want)
			sorted := slices.Sorted(slices.Values(records))
			if !slices.Equal(sorted, want) {
				t.Fatalf("root %q: records\n%s\nwant\n%s", tc.root, strings.Join(sorted, "\n"), strings.Join(want, "\n"))
			}
			if len(skipped) != len(wantSkipped) || st.Skipped != int64(len(wantSkipped)) {
				t.Fatalf("root %q: skipped %q (stats %d), want %d", tc.root, skipped, st.Skipped, len(wantSkipped))
			}
			for _, w := range wantSkipped {
				if !slices.ContainsFunc(skipped, func(s string) bool { return strings.HasSuffix(s, w) }) {
					t.Errorf("root %q: no skipped comment ending %q in %q", tc.root, w, skipped)
				}
			}
			if st.Files != int64(len(files)) {
				t.Errorf("root %q: stats say %d files, want %d", tc.root, st.Files, len(files))
			}
			// Depth-first order, entries sorted bytewise: etc/* before the top-level names after "etc".
			if i, j := strings.Index(got, "etc/shadow-link\n"), strings.Index(got, "with space\n"); i < 0 || j < 0 || i > j {
				t.Errorf("root %q: not in depth-first order", tc.root)
			}
		}
	}
}

// TestWriteHashesLongLine: a name whose line would be longer than hashdeep reads whole is a comment,
// and every line of the file (comments too) stays short enough.
func TestWriteHashesLongLine(t *testing.T) {
	name := strings.Repeat("n/", 1000) + "file" // 2004 bytes: with the hashes and root, over 2047
	v, err := overlay.New([]overlay.Layer{fakelayer.New(tartest.File(name, "x"), tartest.File("short", "y"))}, overlay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, st := writeHashList(t, v, HashOptions{Root: "/mnt/some/where", Invocation: Invocation{Args: []string{strings.Repeat("a", 3000), "b"}}})
	if st.Skipped != 1 || st.Files != 2 {
		t.Fatalf("stats %+v, want 2 files, 1 skipped", st)
	}
	for i, line := range strings.SplitAfter(got, "\n") {
		if len(line) > hashdeepMaxLine {
			t.Errorf("line %d is %d bytes, longer than hashdeep reads", i+1, len(line))
		}
	}
	if !strings.Contains(got, "\n"+hashLine("/mnt/some/where/short", []byte("y"))+"\n") {
		t.Errorf("short file missing:\n%s", got)
	}
}

// TestWriteHashesAgainstHashdeep compares the records with those hashdeep itself writes for a
// directory holding the same files (hashdeep -o f -l: regular files only, relative names).
func TestWriteHashesAgainstHashdeep(t *testing.T) {
	if _, err := exec.LookPath("hashdeep"); err != nil {
		t.Fatal("hashdeep is needed (scripts/install-deps.sh installs it)")
	}
	layers, files := hashFixture(t)
	v, err := overlay.New(layers, overlay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, data := range files {
		if strings.ContainsAny(name, "\r\n") {
			continue // hashdeep writes such a name as a broken line: nothing to compare with
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []string{"abs-link", "rel-link", "dir-link"} {
		if err := os.Symlink("etc", filepath.Join(dir, l)); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("hashdeep", "-c", "md5,sha256", "-o", "f", "-l", "-r", ".")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hashdeep: %v", err)
	}
	recs := func(s string) []string {
		var r []string
		for _, line := range strings.Split(s, "\n") {
			if line != "" && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "%%%%") {
				r = append(r, line)
			}
		}
		slices.Sort(r)
		return r
	}
	got, _ := writeHashList(t, v, HashOptions{})
	if g, w := recs(got), recs(string(out)); !slices.Equal(g, w) {
		t.Fatalf("imgfs:\n%s\nhashdeep:\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
	if want := strings.SplitN(string(out), "\n", 3)[:2]; !strings.HasPrefix(got, want[0]+"\n"+want[1]+"\n") {
		t.Errorf("first lines %q, hashdeep's %q", strings.SplitN(got, "\n", 3)[:2], want)
	}
}

// TestWriteLayerHashes lists one layer as its tar holds it: the whiteout marker as an empty file, the
// hard link with its target's data, no lower file.
func TestWriteLayerHashes(t *testing.T) {
	layers, _ := hashFixture(t)
	var buf bytes.Buffer
	st, err := WriteLayerHashes(context.Background(), layers[1], &buf, HashOptions{Root: "/l2"})
	if err != nil {
		t.Fatal(err)
	}
	var recs []string
	for _, line := range strings.Split(buf.String(), "\n") {
		if line != "" && line[0] != '#' && line[0] != '%' {
			recs = append(recs, line)
		}
	}
	want := []string{
		hashLine("/l2/etc/.wh.gone", nil),
		hashLine("/l2/etc/shadow", []byte("root:*:1::::::\n")),
		hashLine("/l2/etc/shadow-link", []byte("root:*:1::::::\n")),
		hashLine("/l2/with space", []byte("a b, replaced\n")),
	}
	if !slices.Equal(recs, want) || st.Files != 4 {
		t.Fatalf("got (%d files)\n%s\nwant\n%s", st.Files, strings.Join(recs, "\n"), strings.Join(want, "\n"))
	}
}

// failingLayer is a layer whose reads of one member fail.
type failingLayer struct {
	*fakelayer.Layer
	bad index.ID
}

func (f failingLayer) ReadAt(id index.ID, p []byte, off int64) (int, error) {
	if id == f.bad {
		return 0, errors.New("read error")
	}
	return f.Layer.ReadAt(id, p, off)
}

// TestWriteHashesReadError: a file that cannot be read fails the list, naming the file.
func TestWriteHashesReadError(t *testing.T) {
	ms := []tartest.Member{tartest.File("a", "1")}
	for i := range 500 {
		ms = append(ms, tartest.File(fmt.Sprintf("f%03d", i), "x"))
	}
	l := fakelayer.New(ms...)
	bad, _ := l.Lookup(0, "f250")
	v, err := overlay.New([]overlay.Layer{failingLayer{l, bad}}, overlay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, err = WriteHashes(context.Background(), v, &buf, HashOptions{Root: "/m", Workers: 4})
	if err == nil || !strings.Contains(err.Error(), "/m/f250: read error") {
		t.Fatalf("err = %v, want one naming /m/f250", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := WriteHashes(ctx, v, &buf, HashOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: err = %v", err)
	}
}

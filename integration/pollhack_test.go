package integration

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/imgfs/imgfs/internal/sample"
	"github.com/imgfs/imgfs/internal/tartest"
)

// TestPollHackName checks the image's root file ".go-fuse-epoll-hack", a name that go-fuse answers
// itself: the mount hides it consistently (never listed, and the name shows the same thing before and
// after a listing), and export still carries the image's file.
func TestPollHackName(t *testing.T) {
	requireFUSE(t)
	dir := t.TempDir()
	archive := filepath.Join(dir, "pollhack.tar")
	const hack = ".go-fuse-epoll-hack"
	layers := [][]tartest.Member{{
		tartest.File(hack, "the image's own file"),
		tartest.File("other", "x"),
		tartest.Dir("sub"),
		tartest.File("sub/"+hack, "below the root it is an ordinary name"),
	}}
	if err := sample.WriteArchive(archive, "pollhack:latest", layers, false); err != nil {
		t.Fatal(err)
	}
	mnt := mountImage(t, archive)
	var before syscall.Stat_t
	errBefore := syscall.Lstat(filepath.Join(mnt, hack), &before)
	for range 2 { // a listing with attributes (READDIRPLUS) hands the kernel entries for every name
		ents, err := os.ReadDir(mnt)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			if _, err := e.Info(); err != nil {
				t.Errorf("%s: %v", e.Name(), err)
			}
			names = append(names, e.Name())
		}
		if want := []string{"other", "sub"}; !slices.Equal(names, want) {
			t.Errorf("root lists %q, want %q", names, want)
		}
	}
	var after syscall.Stat_t
	errAfter := syscall.Lstat(filepath.Join(mnt, hack), &after)
	if (errBefore == nil) != (errAfter == nil) || before.Ino != after.Ino || before.Size != after.Size {
		t.Errorf("%s changes with a listing: before ino %d size %d (%v), after ino %d size %d (%v)",
			hack, before.Ino, before.Size, errBefore, after.Ino, after.Size, errAfter)
	}
	if data, err := os.ReadFile(filepath.Join(mnt, "sub", hack)); err != nil || string(data) != "below the root it is an ordinary name" {
		t.Errorf("sub/%s: %q, %v", hack, data, err)
	}

	out, stderr, code := imgfs(t, "export", "--quiet", "--cache-dir", cacheDir, "-o", "-", archive)
	if code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	found := false
	tr := tar.NewReader(bytes.NewReader([]byte(out)))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == hack {
			data, _ := io.ReadAll(tr)
			found = string(data) == "the image's own file"
		}
	}
	if !found {
		t.Errorf("export does not carry the image's %s", hack)
	}
}

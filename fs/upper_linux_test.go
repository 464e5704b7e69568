package fs

import (
	"path/filepath"
	"testing"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

// newUpperView returns a writable overlay view of one in-memory layer holding members, over a new upper
// directory, and that directory.
func newUpperView(t *testing.T, members ...memMember) (*overlay.View, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "upper")
	u, err := overlay.OpenUpper(overlay.UpperOptions{Dir: dir, Base: "sha256:test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := u.Close(); err != nil {
			t.Errorf("closing the upper dir: %v", err)
		}
	})
	v, err := overlay.New([]overlay.Layer{newMemLayer(members...)}, overlay.Options{Upper: u})
	if err != nil {
		t.Fatal(err)
	}
	if !v.Writable() {
		t.Fatal("a view with an upper directory is not writable")
	}
	return v, dir
}

// TestMountWriteOverlay runs the writable mount suite on a real overlay view over a temporary upper
// directory, then compares the mount with a second, cold mount of the same view.
func TestMountWriteOverlay(t *testing.T) {
	v, dir := newUpperView(t, writeImage...)
	mnt, _ := mountFS(t, newFileSystem(v, Options{UpperDir: dir}))
	writeSuite(t, mnt)
	fresh, _ := mountFS(t, newFileSystem(v, Options{UpperDir: dir}))
	compareTrees(t, mnt, fresh)
}

// overlayPosixSkips are the posixtest tests that a real overlay view fails, and why.
var overlayPosixSkips = map[string]string{}

// TestPosixOverlay runs go-fuse's POSIX suite on a real overlay view, in a directory of the image
// (empty there, so the first change copies it up), with other files of the image around it.
func TestPosixOverlay(t *testing.T) {
	t.Parallel()
	runPosix(t, func(t *testing.T) (*fileSystem[*overlay.Dir], string) {
		v, dir := newUpperView(t,
			memMember{"t", index.TypeDir, 0o777, ""},
			memMember{"etc/passwd", index.TypeRegular, 0o644, "root:x:0:0\n"},
			memMember{"file", index.TypeRegular, 0o644, "a lower file"},
		)
		return newFileSystem(v, Options{UpperDir: dir}), "t"
	}, overlayPosixSkips)
}

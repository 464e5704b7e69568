package fs

import (
	"slices"
	"strings"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// posixSkips are the tests of go-fuse's posixtest suite that no writable view of ours can pass, and why.
var posixSkips = map[string]string{
	"Fallocate":         "fallocate is EOPNOTSUPP: the view's files cannot reserve space (posix_fallocate(3) writes zeros instead)",
	"FallocateKeepSize": "fallocate is EOPNOTSUPP: the view's files cannot reserve space",
	"FcntlFlockLocksFile": "the test expects a process's second fd to conflict with its own POSIX lock; " +
		"locks are the kernel's (not forwarded to the server), with POSIX semantics: a process never conflicts " +
		"with itself (go-fuse's own TestAll skips this test too)",
}

// runPosix runs every test of posixtest.All, each on a fresh mount of the file system that newFS returns,
// in the directory that dir names under the mount ("" for its root), unless posixSkips or skips name it.
func runPosix[D Dir](t *testing.T, newFS func(t *testing.T) (*fileSystem[D], string), skips map[string]string) {
	names := make([]string, 0, len(posixtest.All))
	for name := range posixtest.All {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			if why, ok := posixSkips[name]; ok {
				t.Skip(why)
			}
			if why, ok := skips[name]; ok {
				t.Skip(why)
			}
			fsys, dir := newFS(t)
			mnt, _ := mountFS(t, fsys)
			posixtest.All[name](t, strings.TrimSuffix(mnt+"/"+dir, "/"))
		})
	}
}

// TestPosixFake runs go-fuse's POSIX suite on a writable fake view.
func TestPosixFake(t *testing.T) {
	t.Parallel()
	runPosix(t, func(t *testing.T) (*fileSystem[*fakeDir], string) {
		return newFileSystem(newFakeWView(), Options{UpperDir: t.TempDir()}), ""
	}, nil)
}

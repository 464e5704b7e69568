package layerdiff

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/ovlfmt"
	"github.com/imgfs/imgfs/internal/tartest"
	"github.com/imgfs/imgfs/overlay"
	"golang.org/x/sys/unix"
)

// agreeLower is the lower image of the agreement tests.
var agreeLower = []tartest.Member{tartest.File("etc/motd", "motd"), tartest.File("etc/keep", "keep"),
	tartest.File("d/a", "a"), tartest.File("d/b", "b"), tartest.File("m/f", "data of f"), tartest.File("x/y", "y")}

// viewPaths walks v, reading every directory, entry, xattr list and file, and returns every path it
// shows ("/a/b", true for a directory), or the first error of the walk.
func viewPaths(v *overlay.View) (map[string]bool, error) {
	paths := map[string]bool{}
	var walk func(n overlay.Node, dir string) error
	walk = func(n overlay.Node, dir string) error {
		d, err := v.ReadDir(n)
		if err != nil {
			return err
		}
		for i := range d.Len() {
			name := d.Entry(i).Name
			a, err := v.Lookup(n, name)
			if err != nil {
				return err
			}
			p := dir + "/" + name
			paths[p] = a.Type == index.TypeDir
			if _, err := v.Xattrs(a.Node); err != nil {
				return err
			}
			if a.Type == index.TypeRegular {
				f, err := v.Open(a.Node)
				if err != nil {
					return err
				}
				_, err = f.ReadAt(make([]byte, a.Size), 0)
				if c, ok := f.(io.Closer); ok {
					c.Close()
				}
				if err != nil && err != io.EOF {
					return err
				}
			}
			if a.Type == index.TypeDir {
				if err := walk(a.Node, p); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return paths, walk(overlay.Root, "")
}

// checkAgree runs upper directory up over the lower image through the writable view (opened
// read-only, every file read) and through the change reader (Changes, and Write, which reads the
// files). When refuse is set the view and the commit must both fail with an error that wraps it and
// names it in its message; else all must succeed and agree path by path: a path is Added exactly when
// only the view shows it, Deleted when only the lower view does (or its deleted or replaced parent
// is), and Changed only when both show it.
func checkAgree(t *testing.T, up string, refuse error) {
	t.Helper()
	lower, layers := clLower(t, agreeLower)
	// The view opens only an upper directory that records its base, as `imgfs mount --upper` does.
	if err := unix.Lsetxattr(up, "trusted."+ovlfmt.Base, []byte("sha256:base"), 0); err != nil {
		t.Fatal(err)
	}
	changes, cerr := Changes(context.Background(), lower, up)
	_, werr := Write(context.Background(), io.Discard, lower, up, Options{})
	u, err := overlay.OpenUpper(overlay.UpperOptions{Dir: up, Base: "sha256:base", ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	v, err := overlay.New(layers, overlay.Options{Upper: u})
	if err != nil {
		t.Fatal(err)
	}
	inView, verr := viewPaths(v)
	if refuse != nil {
		for what, err := range map[string]error{"commit": werr, "view": verr} {
			if !errors.Is(err, refuse) || !strings.Contains(err.Error(), refuse.Error()) {
				t.Errorf("%s: %v, want an error wrapping %q", what, err, refuse)
			}
		}
		return
	}
	if cerr != nil || werr != nil || verr != nil {
		t.Fatalf("changes: %v; commit: %v; view: %v", cerr, werr, verr)
	}
	inLower, err := viewPaths(lower)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]Kind{}
	for _, c := range changes {
		kinds[c.Path] = c.Kind
	}
	all := map[string]bool{}
	for _, m := range []map[string]bool{inView, inLower} {
		for p := range m {
			all[p] = true
		}
	}
	for p := range kinds {
		all[p] = true
	}
	// covered: a parent of p is listed deleted or is a non-directory in the view, so p itself is not listed.
	covered := func(p string) bool {
		for q := filepath.Dir(p); q != "/"; q = filepath.Dir(q) {
			if isDir, ok := inView[q]; kinds[q] == Deleted || ok && !isDir {
				return true
			}
		}
		return false
	}
	for p := range all {
		k, listed := kinds[p]
		_, inUp := inView[p]
		_, inLow := inLower[p]
		switch {
		case inUp && !inLow && k != Added:
			t.Errorf("%s is new in the view, but the change set says %q (listed %v)", p, k, listed)
		case !inUp && inLow && k != Deleted && !covered(p):
			t.Errorf("%s is gone from the view, but the change set says %q (listed %v)", p, k, listed)
		case listed && k == Changed && !(inUp && inLow):
			t.Errorf("%s listed as changed: in the view %v, below %v", p, inUp, inLow)
		}
	}
	if t.Failed() {
		t.Logf("changes: %v\nview: %v", changes, inView)
	}
}

// TestFormatAgreementHandMade runs hand-made upper directories through the view and the change reader:
// xattr whiteouts count only in a directory marked for them, as the kernel reads them; a redirect and
// a metacopy file are refused by both with the same error.
func TestFormatAgreementHandMade(t *testing.T) {
	t.Parallel()
	clRequireRoot(t)
	xwh := func(p, ns string) clEnt {
		return clEnt{path: p, kind: 'f', xattrs: map[string]string{ns + ovlfmt.Whiteout: ""}}
	}
	for _, tc := range []struct {
		name   string
		ents   []clEnt
		refuse error
	}{
		{"device whiteout and opaque directory", []clEnt{clW("etc/motd"), clOpaque("d"), clF("d/new", "n")}, nil},
		{"xattr whiteout in a directory marked opaque=x", []clEnt{{path: "etc", kind: 'd',
			xattrs: map[string]string{"trusted.overlay.opaque": "x"}}, xwh("etc/motd", "trusted.")}, nil},
		{"user xattr whiteout, directory marked", []clEnt{{kind: 'W', path: "etc/motd"}}, nil},
		{"xattr whiteout in an unmarked directory is a plain empty file", []clEnt{xwh("etc/motd", "trusted."),
			xwh("etc/new", "user.")}, nil},
		{"xattr whiteout in the marked root", []clEnt{{path: "", kind: 'd',
			xattrs: map[string]string{"trusted.overlay.opaque": "x"}}, xwh("x", "trusted.")}, nil},
		{"redirect", []clEnt{{path: "e", kind: 'd', xattrs: map[string]string{"trusted.overlay.redirect": "/d"}}},
			ovlfmt.ErrRedirect},
		{"metacopy", []clEnt{{path: "m/f", kind: 'f', xattrs: map[string]string{"trusted.overlay.metacopy": ""}}},
			ovlfmt.ErrMetacopy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := clUpper(t, tc.ents...)
			if tc.refuse == ovlfmt.ErrMetacopy { // as the kernel makes one: the lower file's size, no data
				if err := os.Truncate(filepath.Join(up, "m/f"), 9); err != nil {
					t.Fatal(err)
				}
			}
			checkAgree(t, up, tc.refuse)
		})
	}
}

// TestFormatAgreementKernelMade lets the kernel's overlayfs write upper directories over the lower
// image: removals (whiteouts), a directory removed and made again (opaque), a new file; a directory
// renamed with redirect_dir=on (the kernel's redirect xattr); a chmod with metacopy=on (a metacopy
// file). The view and the change reader must agree on the first, and refuse the others alike.
func TestFormatAgreementKernelMade(t *testing.T) {
	t.Parallel()
	clRequireRoot(t)
	lower, _ := clLower(t, agreeLower)
	low := t.TempDir()
	clExtract(t, lower, low)
	for _, tc := range []struct {
		name    string
		opts    string
		ops     func(mnt string) error
		refuse  error
		marker  string // the upper path that must carry the kernel's marker
		xattrOf string
	}{
		{"whiteouts and opaque", "redirect_dir=off,metacopy=off", func(mnt string) error {
			return errors.Join(os.Remove(filepath.Join(mnt, "etc/motd")), os.RemoveAll(filepath.Join(mnt, "d")),
				os.Mkdir(filepath.Join(mnt, "d"), 0o755), os.WriteFile(filepath.Join(mnt, "d/new"), []byte("n"), 0o644),
				os.RemoveAll(filepath.Join(mnt, "x")))
		}, nil, "d", "trusted.overlay.opaque"},
		{"redirect", "redirect_dir=on,metacopy=off", func(mnt string) error {
			return os.Rename(filepath.Join(mnt, "d"), filepath.Join(mnt, "e"))
		}, ovlfmt.ErrRedirect, "e", "trusted.overlay.redirect"},
		{"metacopy", "redirect_dir=on,metacopy=on", func(mnt string) error {
			return os.Chmod(filepath.Join(mnt, "m/f"), 0o600)
		}, ovlfmt.ErrMetacopy, "m/f", "trusted.overlay.metacopy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up, work, mnt := t.TempDir(), t.TempDir(), t.TempDir()
			opts := "lowerdir=" + low + ",upperdir=" + up + ",workdir=" + work + ",index=off,xino=off," + tc.opts
			if err := unix.Mount("overlay", mnt, "overlay", 0, opts); err != nil {
				t.Fatalf("mount -t overlay -o %s: %v", opts, err)
			}
			err := tc.ops(mnt)
			if uerr := unix.Unmount(mnt, 0); uerr != nil {
				unix.Unmount(mnt, unix.MNT_DETACH)
				t.Fatal(uerr)
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := unix.Lgetxattr(filepath.Join(up, tc.marker), tc.xattrOf, nil); err != nil {
				t.Fatalf("the kernel wrote no %s on %s: %v", tc.xattrOf, tc.marker, err)
			}
			checkAgree(t, up, tc.refuse)
		})
	}
}

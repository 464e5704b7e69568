package integration

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imgfs/imgfs/internal/sample"
	"github.com/imgfs/imgfs/internal/tartest"
)

// TestBreakouts runs one table of breakout attempts (after containerd's pkg/archive TestBreakouts: ".."
// names, absolute and relative symlinks out of the root, hardlinks to files outside, symlinked parents,
// a symlink or a directory replacing the other in a later layer) through mount, export, import and
// commit. Every escape points at a directory outside holding a secret: nothing may read the secret,
// write beside it, or produce a name, link or file that leads out. TestHostileLayer checks the exact
// view of one such image; this checks every path of the tool against every case.
func TestBreakouts(t *testing.T) {
	requireFUSE(t)
	outside := t.TempDir()
	secret := []byte("HOST SECRET " + outside)
	if err := os.WriteFile(filepath.Join(outside, "secret"), secret, 0o644); err != nil {
		t.Fatal(err)
	}
	// up climbs from any depth to the file system root: a relative target that ends outside.
	up := strings.Repeat("../", 16) + strings.TrimPrefix(outside, "/")
	body := func(name string) tartest.Member { return tartest.File(name, "inside: "+name) }
	cases := []struct {
		name   string
		layers [][]tartest.Member
	}{
		{"dotdot-names", [][]tartest.Member{{body("../x-escape"), body("a/../../x-escape"), body("./../x-escape2"),
			body(strings.TrimPrefix(outside, "/") + "/../../x-escape3")}}},
		{"symlink-absolute-parent", [][]tartest.Member{{tartest.Symlink("localetc", outside), body("localetc/x-through")}}},
		{"symlink-relative-parent", [][]tartest.Member{{tartest.Symlink("rel", up), body("rel/x-through")}}},
		{"symlink-up-and-out", [][]tartest.Member{{tartest.Dir("dummy"), tartest.Symlink("ud", "dummy/"+up), body("ud/x-through")}}},
		{"symlink-chain", [][]tartest.Member{{tartest.Dir("dummy"), tartest.Symlink("dummy/out", outside),
			tartest.Symlink("chain", "./dummy/out"), body("chain/x-through"), body("dummy/out/x-through")}}},
		{"symlink-dotdot-name", [][]tartest.Member{{tartest.Symlink("..", outside), body("../x-through"),
			tartest.Symlink("sub/..", outside), body("sub/../x-through2")}}},
		{"hardlink-absolute", [][]tartest.Member{{tartest.Hardlink("hl", filepath.Join(outside, "secret"))}}},
		{"hardlink-relative", [][]tartest.Member{{tartest.Hardlink("hl", up+"/secret"), tartest.Hardlink("a/hl2", "../"+up+"/secret")}}},
		{"hardlink-through-symlink", [][]tartest.Member{{tartest.Symlink("d1", outside), tartest.Hardlink("hl", "d1/secret"),
			tartest.Symlink("d2", up), tartest.Hardlink("hl2", "d2/secret")}}},
		{"hardlink-to-outward-symlink", [][]tartest.Member{{tartest.Symlink("s", filepath.Join(outside, "secret")), tartest.Hardlink("h", "s")}}},
		{"symlink-over-directory", [][]tartest.Member{
			{tartest.Dir("localetc"), body("localetc/keep")},
			{tartest.Symlink("localetc", outside), body("localetc/x-through"), tartest.Hardlink("hl", "localetc/secret")}}},
		{"directory-over-symlink", [][]tartest.Member{
			{tartest.Symlink("localetc", outside)},
			{tartest.Dir("localetc"), body("localetc/x-inside"), tartest.Hardlink("localetc/hl", "localetc/secret")}}},
		{"symlink-root-member", [][]tartest.Member{{{Name: "./", Type: tar.TypeSymlink, Linkname: outside}, body("x-through")}}},
	}
	work := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var bodies [][]byte
			var all []tartest.Member
			for _, l := range c.layers {
				for _, m := range l {
					bodies = append(bodies, m.Body)
					all = append(all, m)
				}
			}
			dir := filepath.Join(work, c.name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			archive := filepath.Join(dir, "image.tar")
			if err := sample.WriteArchive(archive, "breakout:latest", c.layers, true); err != nil {
				t.Fatal(err)
			}
			defer checkOutside(t, outside, secret)

			t.Run("mount", func(t *testing.T) {
				checkView(t, mountImage(t, archive), bodies, secret)
			})
			t.Run("export", func(t *testing.T) {
				out := filepath.Join(dir, "export.tar")
				if _, stderr, code := imgfs(t, "export", "-q", "--cache-dir", cacheDir, "-o", out, archive); code != 0 {
					t.Fatalf("export: exit %d: %s", code, stderr)
				}
				checkFlatTar(t, out, bodies, secret)
			})
			t.Run("import", func(t *testing.T) {
				flat := filepath.Join(dir, "flat.tar")
				if err := os.WriteFile(flat, tartest.Tar(t, all...), 0o644); err != nil {
					t.Fatal(err)
				}
				out := filepath.Join(dir, "imported.tar")
				_, stderr, code := imgfs(t, "import", "-q", "-o", out, flat)
				if code != 0 {
					// Refusing is fine: with one line naming the input, and no output.
					if strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, flat) {
						t.Errorf("import refused with more than one line or without the file name: %q", stderr)
					}
					if _, err := os.Lstat(out); !os.IsNotExist(err) {
						t.Errorf("refused import left %s", out)
					}
					return
				}
				checkView(t, mountImage(t, out), bodies, secret)
				exp := filepath.Join(dir, "imported-export.tar")
				if _, stderr, code := imgfs(t, "export", "-q", "--cache-dir", cacheDir, "-o", exp, out); code != 0 {
					t.Fatalf("export of the import: exit %d: %s", code, stderr)
				}
				checkFlatTar(t, exp, bodies, secret)
			})
			t.Run("commit", func(t *testing.T) {
				upper := filepath.Join(dir, "upper")
				if err := os.Mkdir(upper, 0o755); err != nil {
					t.Fatal(err)
				}
				// An upper directory whose entries point out: commit stores the links, never what is behind them.
				for name, target := range map[string]string{"planted-abs": outside, "planted-rel": up,
					"planted-file": filepath.Join(outside, "secret")} {
					if err := os.Symlink(target, filepath.Join(upper, name)); err != nil {
						t.Fatal(err)
					}
				}
				mnt := mountImage(t, archive, "--upper", upper)
				written := []byte("written through the mount")
				if err := os.WriteFile(filepath.Join(mnt, "x-written"), written, 0o644); err != nil {
					t.Fatal(err)
				}
				checkView(t, mnt, append(bodies, written), secret)
				// Committed while mounted (the mount is paused meanwhile), as a CI flow would.
				out := filepath.Join(dir, "commit.tar")
				if _, stderr, code := imgfs(t, "commit", "-q", "--cache-dir", cacheDir, "--upper", upper, "-o", out, archive); code != 0 {
					t.Fatalf("commit: exit %d: %s", code, stderr)
				}
				exp := filepath.Join(dir, "commit-export.tar")
				if _, stderr, code := imgfs(t, "export", "-q", "--cache-dir", cacheDir, "-o", exp, out); code != 0 {
					t.Fatalf("export of the commit: exit %d: %s", code, stderr)
				}
				names := checkFlatTar(t, exp, append(bodies, written), secret)
				for _, n := range []string{"planted-abs", "planted-rel", "planted-file", "x-written"} {
					if !slices.Contains(names, n) {
						t.Errorf("the commit lacks %s: %q", n, names)
					}
				}
			})
			// Nothing was written beside the case's own files.
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), "x-") {
					t.Errorf("%s appeared in %s", e.Name(), dir)
				}
			}
		})
	}
	for _, p := range []string{filepath.Join(filepath.Dir(work), "x-escape"), "/x-escape", "/x-through", "/tmp/x-escape"} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s exists", p)
		}
	}
}

// checkOutside fails when the directory outside holds anything but its secret, unchanged.
func checkOutside(t *testing.T, outside string, secret []byte) {
	t.Helper()
	ents, err := os.ReadDir(outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "secret" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("the directory outside now holds %q", names)
	}
	if b, err := os.ReadFile(filepath.Join(outside, "secret")); err != nil || !bytes.Equal(b, secret) {
		t.Errorf("the secret outside changed: %q, %v", b, err)
	}
}

// checkView walks a mount without following symlinks: every file holds bytes of the archive (one of
// bodies), never the secret outside.
func checkView(t *testing.T, mnt string, bodies [][]byte, secret []byte) {
	t.Helper()
	err := filepath.Walk(mnt, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			t.Errorf("walk: %v", err)
			return nil
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			return nil
		}
		if bytes.Contains(b, secret) || !containsBytes(bodies, b) {
			t.Errorf("%s holds %q: not a file of the archive", strings.TrimPrefix(p, mnt), b)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// checkFlatTar reads a flat tar: every name stays inside, no member is written through an earlier
// symlink member, every hardlink names an earlier member, every file holds bytes of the archive. It
// returns the member names.
func checkFlatTar(t *testing.T, tarball string, bodies [][]byte, secret []byte) []string {
	t.Helper()
	f, err := os.Open(tarball)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	seen := map[string]byte{}
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", tarball, err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		if name == "" || name == "." {
			if h.Typeflag != tar.TypeDir {
				t.Errorf("root member of type %q", h.Typeflag)
			}
			continue
		}
		if !filepath.IsLocal(name) || path.Clean(name) != name {
			t.Errorf("member %q leaves the root or is not clean", h.Name)
		}
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			if seen[d] == tar.TypeSymlink {
				t.Errorf("member %q goes through the symlink %q", h.Name, d)
			}
		}
		switch h.Typeflag {
		case tar.TypeLink:
			target := strings.TrimPrefix(h.Linkname, "./")
			if _, ok := seen[target]; !ok || !filepath.IsLocal(target) {
				t.Errorf("hardlink %q -> %q: not an earlier member", h.Name, h.Linkname)
			}
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, secret) || !containsBytes(bodies, b) {
				t.Errorf("member %q holds %q: not a file of the archive", h.Name, b)
			}
		}
		seen[name] = h.Typeflag
		names = append(names, name)
	}
	return names
}

func containsBytes(set [][]byte, b []byte) bool {
	if len(b) == 0 {
		return true
	}
	for _, s := range set {
		if bytes.Equal(s, b) {
			return true
		}
	}
	return false
}

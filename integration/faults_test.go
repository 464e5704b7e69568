package integration

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/imgfs/imgfs/internal/sample"
	"github.com/imgfs/imgfs/internal/tartest"
)

// TestArchiveChangedUnderLiveMount changes, truncates or deletes the archive under a live read-only
// and a live writable mount, with the file's layer stored plain and gzip-compressed, and then reads the
// file (first read after the change, so no page cache holds it), and in the writable mount copies it
// up: every read gives the original bytes or EIO, never other bytes (a deleted archive, still open,
// gives its bytes), and a copy-up that cannot read the original fails rather than keeping a wrong copy.
func TestArchiveChangedUnderLiveMount(t *testing.T) {
	requireFUSE(t)
	r := rand.New(rand.NewPCG(7, 9))
	body := make([]byte, 8<<20)
	for i := range body {
		body[i] = byte(r.Uint32())
	}
	want := sha256.Sum256(body)
	for _, gz := range []bool{false, true} {
		for _, how := range []string{"changed", "truncated", "deleted"} {
			for _, writable := range []bool{false, true} {
				name := map[bool]string{false: "plain", true: "gzip"}[gz] + "/" + how + "/" + map[bool]string{false: "ro", true: "rw"}[writable]
				t.Run(name, func(t *testing.T) {
					dir := t.TempDir()
					archive := filepath.Join(dir, "img.tar")
					ms := []tartest.Member{tartest.File("small.txt", "small\n"), {Name: "data.bin", Body: body, Mode: 0o644}}
					if err := sample.WriteArchive(archive, "faults:1", [][]tartest.Member{ms}, gz); err != nil {
						t.Fatal(err)
					}
					var flags []string
					if writable {
						flags = []string{"--upper", filepath.Join(dir, "upper")}
					}
					mnt := mountImage(t, archive, flags...)
					if b, err := os.ReadFile(filepath.Join(mnt, "small.txt")); err != nil || string(b) != "small\n" {
						t.Fatalf("small.txt before the change: %q %v", b, err)
					}
					raw, err := os.ReadFile(archive)
					if err != nil {
						t.Fatal(err)
					}
					// Where to damage: the middle of data.bin's bytes (plain), the middle of the archive (gzip).
					mid := len(raw) / 2
					if !gz {
						at := bytes.Index(raw, body[:4096])
						if at < 0 {
							t.Fatal("data.bin's bytes not found in the archive")
						}
						mid = at + len(body)/2
					}
					switch how {
					case "changed":
						f, err := os.OpenFile(archive, os.O_WRONLY, 0)
						if err != nil {
							t.Fatal(err)
						}
						junk := bytes.Repeat([]byte{0x5a}, 64<<10)
						if _, err := f.WriteAt(junk, int64(mid)); err != nil {
							t.Fatal(err)
						}
						f.Close()
					case "truncated":
						if err := os.Truncate(archive, int64(mid)); err != nil {
							t.Fatal(err)
						}
					case "deleted":
						if err := os.Remove(archive); err != nil {
							t.Fatal(err)
						}
					}
					check := func(what string, b []byte, err error) {
						t.Helper()
						switch {
						case err != nil && !errors.Is(err, syscall.EIO):
							t.Errorf("%s: %v, want EIO or the original bytes", what, err)
						case err == nil && sha256.Sum256(b) != want:
							t.Errorf("%s: %d bytes that are not the original's", what, len(b))
						default:
							t.Logf("%s: %v", what, err)
						}
					}
					b, err := os.ReadFile(filepath.Join(mnt, "data.bin"))
					check("read", b, err)
					if how == "deleted" && err != nil {
						t.Errorf("read of a deleted archive (its bytes are still behind the open file): %v", err)
					}
					if !writable {
						return
					}
					// A copy-up (open for writing) reads the whole lower file.
					f, err := os.OpenFile(filepath.Join(mnt, "data.bin"), os.O_WRONLY|os.O_APPEND, 0)
					if err == nil {
						_, err = f.Write([]byte("appended"))
						if cerr := f.Close(); err == nil {
							err = cerr
						}
					}
					if err != nil {
						check("copy-up", nil, err)
						if b, err := os.ReadFile(filepath.Join(dir, "upper", "data.bin")); err == nil {
							t.Errorf("a failed copy-up left data.bin (%d bytes) in the upper directory", len(b))
						}
						if ents, err := os.ReadDir(filepath.Join(dir, ".upper.imgfs-work")); err != nil || len(ents) != 0 {
							t.Errorf("the work directory after a failed copy-up: %v %v", ents, err)
						}
						return
					}
					b, err = os.ReadFile(filepath.Join(mnt, "data.bin"))
					if err == nil && !bytes.HasSuffix(b, []byte("appended")) {
						t.Errorf("after the append: no appended bytes at the end")
					}
					if err == nil {
						b = b[:len(b)-len("appended")]
					}
					check("read after the copy-up", b, err)
				})
			}
		}
	}
}

// smallTmpfs mounts an 8 MiB tmpfs and returns its path; it is unmounted at cleanup.
func smallTmpfs(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "imgfs-small-")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=8m"); err != nil {
		os.Remove(dir)
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			unix.Unmount(dir, unix.MNT_DETACH)
		}
		os.Remove(dir)
	})
	return dir
}

// TestOutOfSpace puts the upper directory and the commit output on an 8 MiB tmpfs: a write that fills
// it gets ENOSPC, a copy-up of a 16 MiB lower file gets ENOSPC and leaves nothing behind, and a commit
// whose output does not fit fails with one "no space left on device" line naming OUT, leaves the old
// OUT as it was and no temporary; so do an export and an import. A remount then shows the same tree, with what was written before.
func TestOutOfSpace(t *testing.T) {
	requireFUSE(t)
	r := rand.New(rand.NewPCG(3, 4))
	big := make([]byte, 16<<20)
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	dir := t.TempDir()
	archive := filepath.Join(dir, "img.tar")
	ms := []tartest.Member{tartest.File("small.txt", "small\n"), {Name: "big.bin", Body: big, Mode: 0o644}}
	if err := sample.WriteArchive(archive, "faults:1", [][]tartest.Member{ms}, false); err != nil {
		t.Fatal(err)
	}
	small := smallTmpfs(t)
	upper := filepath.Join(small, "upper")
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	d := startForeground(t, archive, mnt, "--upper", upper)
	kept := bytes.Repeat([]byte("kept\n"), 1000)
	if err := os.WriteFile(filepath.Join(mnt, "kept.txt"), kept, 0o644); err != nil {
		t.Fatal(err)
	}

	// A write that fills the file system.
	f, err := os.Create(filepath.Join(mnt, "fill.bin"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := big[:1<<20]
	for i := 0; i < 16 && err == nil; i++ {
		_, err = f.Write(chunk)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("writing 16 MiB into an 8 MiB upper directory: %v, want ENOSPC", err)
	}
	if err := os.Remove(filepath.Join(mnt, "fill.bin")); err != nil {
		t.Fatal(err)
	}

	// A copy-up of a lower file larger than the space.
	f, err = os.OpenFile(filepath.Join(mnt, "big.bin"), os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		_, err = f.Write([]byte("more"))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("copy-up of a 16 MiB file into an 8 MiB upper directory: %v, want ENOSPC", err)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "big.bin")); err != nil || !bytes.Equal(b, big) {
		t.Errorf("big.bin after the failed copy-up: %d bytes, %v; want the lower file", len(b), err)
	}
	if _, err := os.Lstat(filepath.Join(upper, "big.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the failed copy-up left big.bin in the upper directory: %v", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(small, &st); err != nil {
		t.Fatal(err)
	}
	if free := int64(st.Bavail) * st.Bsize; free < 7<<20 {
		t.Errorf("after the failed writes %d bytes are free of 8 MiB: something was left behind", free)
	}
	view := walkTree(t, mnt, true)
	d.stop(t)
	waitControlGone(t, upper)

	// A commit whose output does not fit.
	out := filepath.Join(small, "out.tar")
	old := []byte("the old output\n")
	if err := os.WriteFile(out, old, 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := imgfs(t, "commit", "-q", "--cache-dir", cacheDir, "--upper", upper, "-o", out, archive)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code == 0 || len(lines) != 1 || !strings.Contains(stderr, "no space left on device") || !strings.Contains(stderr, out) {
		t.Errorf("commit into a full file system: exit %d, stderr %q; want one line naming %s and saying no space left on device", code, stderr, out)
	}
	if b, err := os.ReadFile(out); err != nil || !bytes.Equal(b, old) {
		t.Errorf("the old output after the failed commit: %q %v", b, err)
	}
	if m, _ := filepath.Glob(filepath.Join(small, ".out.tar*")); len(m) != 0 {
		t.Errorf("the failed commit left %q", m)
	}
	_, stderr, code = imgfs(t, "export", "-q", "--cache-dir", cacheDir, "--upper", upper, "-o", out, archive)
	if code == 0 || !strings.Contains(stderr, "no space left on device") || !strings.Contains(stderr, out) {
		t.Errorf("export into a full file system: exit %d, stderr %q; want an error naming %s and saying no space left on device", code, stderr, out)
	}
	if b, err := os.ReadFile(out); err != nil || !bytes.Equal(b, old) {
		t.Errorf("the old output after the failed export: %q %v", b, err)
	}
	if m, _ := filepath.Glob(filepath.Join(small, ".out.tar*")); len(m) != 0 {
		t.Errorf("the failed export left %q", m)
	}

	flat := filepath.Join(dir, "flat.tar")
	if _, stderr, code := imgfs(t, "export", "-q", "--cache-dir", cacheDir, "-o", flat, archive); code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	_, stderr, code = imgfs(t, "import", "-q", "--compression", "none", "-o", out, flat)
	if code == 0 || !strings.Contains(stderr, "no space left on device") || !strings.Contains(stderr, out) {
		t.Errorf("import into a full file system: exit %d, stderr %q; want an error naming %s and saying no space left on device", code, stderr, out)
	}
	if b, err := os.ReadFile(out); err != nil || !bytes.Equal(b, old) {
		t.Errorf("the old output after the failed import: %q %v", b, err)
	}
	if m, _ := filepath.Glob(filepath.Join(small, ".out.tar*")); len(m) != 0 {
		t.Errorf("the failed import left %q", m)
	}

	// The remount shows the same tree.
	d = startForeground(t, archive, mnt, "--upper", upper)
	compareTrees(t, view, walkTree(t, mnt, true), false)
	if b, err := os.ReadFile(filepath.Join(mnt, "kept.txt")); err != nil || !bytes.Equal(b, kept) {
		t.Errorf("kept.txt after the remount: %d bytes, %v", len(b), err)
	}
	d.stop(t)
}

// TestOutOfSpaceAtRandomPoints writes commit, export and import outputs onto tmpfs file systems of
// seeded sizes from a few KiB to more than the output needs, so that the space runs out at a different
// point of each write (the layer, the config, the manifest, the end-of-archive): each run either
// writes the complete output (equal to the one written with room to spare) or fails saying "no space
// left on device", with the old OUT untouched and no temporary left.
func TestOutOfSpaceAtRandomPoints(t *testing.T) {
	requireFUSE(t)
	r := rand.New(rand.NewPCG(5, 6))
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	dir := t.TempDir()
	archive := filepath.Join(dir, "img.tar")
	ms := []tartest.Member{tartest.File("small.txt", "small\n"), {Name: "big.bin", Body: big, Mode: 0o644}}
	if err := sample.WriteArchive(archive, "faults:1", [][]tartest.Member{ms}, false); err != nil {
		t.Fatal(err)
	}
	upper := filepath.Join(dir, "upper")
	mnt := mountImage(t, archive, "--upper", upper)
	if err := os.WriteFile(filepath.Join(mnt, "new.bin"), big[:1<<20], 0o644); err != nil {
		t.Fatal(err)
	}
	unmountOrDie(t, mnt)
	waitControlGone(t, upper)
	flat := filepath.Join(dir, "flat.tar")
	if _, stderr, code := imgfs(t, "export", "-q", "--cache-dir", cacheDir, "-o", flat, archive); code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	for _, name := range []string{"commit", "export", "import"} {
		args := func(out string) []string {
			switch name {
			case "commit":
				return []string{"commit", "-q", "--cache-dir", cacheDir, "--upper", upper, "-o", out, archive}
			case "export":
				return []string{"export", "-q", "--cache-dir", cacheDir, "--upper", upper, "-o", out, archive}
			}
			return []string{"import", "-q", "-o", out, flat}
		}
		ref := filepath.Join(dir, name+".ref")
		if _, stderr, code := imgfs(t, args(ref)...); code != 0 {
			t.Fatalf("%s: exit %d: %s", name, code, stderr)
		}
		want, err := os.ReadFile(ref)
		if err != nil {
			t.Fatal(err)
		}
		failed := 0
		for range 5 {
			size := 16<<10 + r.Int64N(int64(len(want))*5/4)
			small, err := os.MkdirTemp("", "imgfs-small-")
			if err != nil {
				t.Fatal(err)
			}
			if err := unix.Mount("tmpfs", small, "tmpfs", 0, "size="+strconv.FormatInt(size, 10)); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { unix.Unmount(small, unix.MNT_DETACH); os.Remove(small) })
			out := filepath.Join(small, "out.tar")
			old := []byte("the old output\n")
			if err := os.WriteFile(out, old, 0o644); err != nil {
				t.Fatal(err)
			}
			_, stderr, code := imgfs(t, args(out)...)
			got, _ := os.ReadFile(out)
			switch {
			case code == 0 && !bytes.Equal(got, want):
				t.Errorf("%s into %d bytes: exit 0 but OUT is not the complete output", name, size)
			case code != 0 && (!strings.Contains(stderr, "no space left on device") || !strings.Contains(stderr, out)):
				t.Errorf("%s into %d bytes: exit %d: %q, want no space left on device naming %s", name, size, code, stderr, out)
			case code != 0 && !bytes.Equal(got, old):
				t.Errorf("%s into %d bytes: a failed run changed OUT (%d bytes)", name, size, len(got))
			}
			if code != 0 {
				failed++
			}
			if m, _ := filepath.Glob(filepath.Join(small, ".out.tar*")); len(m) != 0 {
				t.Errorf("%s into %d bytes left %q", name, size, m)
			}
			t.Logf("%s: %d of %d bytes: exit %d", name, size, len(want), code)
			unix.Unmount(small, unix.MNT_DETACH)
			os.Remove(small)
		}
		if failed == 0 {
			t.Errorf("%s: no run ran out of space", name)
		}
	}
}

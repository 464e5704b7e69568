package integration

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imgfs/imgfs/internal/sample"
	"github.com/imgfs/imgfs/internal/tartest"
)

// crashImage is one layer: a large file and a directory tree, also written out as plain files in
// lower (the kernel overlayfs oracle's lower layer).
func crashImage(t *testing.T, dir string) (archive, lower string, big []byte) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	big = make([]byte, 48<<20)
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	ms := []tartest.Member{tartest.Dir("tree"), {Name: "big.bin", Body: big, Mode: 0o644}}
	for d := range 40 {
		ms = append(ms, tartest.Dir(fmt.Sprintf("tree/d%02d", d)))
		for f := range 40 {
			ms = append(ms, tartest.File(fmt.Sprintf("tree/d%02d/f%02d", d, f), fmt.Sprintf("file %d/%d\n", d, f)))
		}
	}
	archive = filepath.Join(dir, "crash.tar")
	if err := sample.WriteArchive(archive, "crash:1", [][]tartest.Member{ms}, false); err != nil {
		t.Fatal(err)
	}
	lower = filepath.Join(dir, "lower")
	if out, err := exec.Command("mkdir", "-p", lower).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	tarData := tartest.Tar(t, ms...)
	cmd := exec.Command("tar", "-x", "-C", lower)
	cmd.Stdin = bytes.NewReader(tarData)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v: %s", err, out)
	}
	return archive, lower, big
}

// TestCrashLeavesNoLeftovers kills the mount daemon with SIGKILL at random points of a copy-up of a
// large file and of a rename of a lower directory with 1,600 files (seeded; IMGFS_CRASH_SEED picks
// another run), then remounts and checks: no temporary anywhere in the upper directory, the work
// directory reclaimed, every fsynced byte there, the copy-up and the rename either done or not, diff
// listing only the paths the operations touched, and the kernel's overlayfs over the same upper
// directory showing the same tree as imgfs.
func TestCrashLeavesNoLeftovers(t *testing.T) {
	requireFUSE(t)
	seed := uint64(20261204)
	if s := os.Getenv("IMGFS_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	base, err := os.MkdirTemp("", "imgfs-crash-") // no commas: it goes into overlay mount options
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	archive, lower, big := crashImage(t, base)
	upper := filepath.Join(base, "upper")
	work := filepath.Join(base, ".upper.imgfs-work")
	mnt := filepath.Join(base, "mnt")
	kmnt := filepath.Join(base, "kmnt")
	for _, d := range []string{mnt, kmnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bigChanged := append([]byte{'X'}, big[1:]...)
	const iterations = 8
	for it := range iterations {
		d := startForeground(t, archive, mnt, "--upper", upper)
		// fsynced data must survive the crash.
		synced := filepath.Join(mnt, fmt.Sprintf("synced-%d.txt", it))
		f, err := os.Create(synced)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(strings.Repeat(fmt.Sprintf("iteration %d\n", it), 1000)); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		var op string
		done := make(chan struct{})
		if it%2 == 0 {
			op = "copy-up"
			go func() {
				defer close(done)
				if f, err := os.OpenFile(filepath.Join(mnt, "big.bin"), os.O_WRONLY, 0); err == nil {
					f.WriteAt([]byte{'X'}, 0)
					f.Close()
				}
			}()
		} else {
			op = "rename"
			from, to := "tree", "moved"
			if _, err := os.Lstat(filepath.Join(mnt, "tree")); err != nil {
				from, to = to, from
			}
			go func() {
				defer close(done)
				os.Rename(filepath.Join(mnt, from), filepath.Join(mnt, to))
			}()
		}
		delay := time.Duration(r.IntN(400)) * time.Millisecond
		time.Sleep(delay)
		t.Logf("iteration %d: SIGKILL %v into a %s", it, delay, op)
		d.kill(t)
		unix.Unmount(mnt, unix.MNT_DETACH)
		<-done

		// Nothing being made shows in the upper directory.
		filepath.WalkDir(upper, func(p string, e os.DirEntry, err error) error {
			if err == nil && strings.HasPrefix(e.Name(), ".wh..wh.") {
				t.Errorf("iteration %d: leftover %s", it, p)
			}
			return nil
		})
		d = startForeground(t, archive, mnt, "--upper", upper)
		if ents, err := os.ReadDir(work); err != nil || len(ents) != 0 {
			t.Errorf("iteration %d: work directory after the remount: %v %v", it, ents, err)
		}
		for j := 0; j <= it; j++ {
			b, err := os.ReadFile(filepath.Join(mnt, fmt.Sprintf("synced-%d.txt", j)))
			if want := strings.Repeat(fmt.Sprintf("iteration %d\n", j), 1000); err != nil || string(b) != want {
				t.Errorf("iteration %d: fsynced synced-%d.txt lost: %v (%d bytes)", it, j, err, len(b))
			}
		}
		if b, err := os.ReadFile(filepath.Join(mnt, "big.bin")); err != nil || !bytes.Equal(b, big) && !bytes.Equal(b, bigChanged) {
			t.Errorf("iteration %d: big.bin is neither the old nor the new content (%d bytes, %v)", it, len(b), err)
		}
		trees := 0
		for _, name := range []string{"tree", "moved"} {
			n := 0
			filepath.WalkDir(filepath.Join(mnt, name), func(p string, e os.DirEntry, err error) error {
				if err == nil && e.Type().IsRegular() {
					n++
				}
				return nil
			})
			if n > 0 {
				trees++
				if n != 1600 {
					t.Errorf("iteration %d: %s holds %d files, want 1600", it, name, n)
				}
			}
		}
		if trees != 1 {
			t.Errorf("iteration %d: %d of tree and moved are there, want one", it, trees)
		}
		view := walkTree(t, mnt, true)
		d.stop(t)
		waitControlGone(t, upper)

		out, stderr, code := imgfs(t, "diff", "--cache-dir", cacheDir, "--upper", upper, archive)
		if code != 0 {
			t.Fatalf("iteration %d: diff: exit %d: %s", it, code, stderr)
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			p := strings.TrimPrefix(line[2:], "/")
			top, _, _ := strings.Cut(p, "/")
			if !strings.HasPrefix(top, "synced-") && top != "big.bin" && top != "tree" && top != "moved" {
				t.Errorf("iteration %d: diff lists %q", it, line)
			}
		}

		// The kernel's overlayfs, with the upper directory as its top layer (read-only: it writes
		// nothing there), shows what imgfs shows.
		if err := unix.Mount("overlay", kmnt, "overlay", unix.MS_RDONLY, "lowerdir="+upper+":"+lower); err != nil {
			t.Fatalf("mount overlay: %v", err)
		}
		compareTrees(t, walkTree(t, kmnt, true), view, true)
		if err := unix.Unmount(kmnt, 0); err != nil {
			t.Fatal(err)
		}
		if t.Failed() {
			break
		}
	}
}

// TestCommitKilledLeavesNoTemp: a commit stopped by SIGTERM or SIGINT removes its temporary beside
// OUT; one killed by SIGKILL leaves it, and the next commit to the same OUT reclaims it.
func TestCommitKilledLeavesNoTemp(t *testing.T) {
	requireFUSE(t)
	base := t.TempDir()
	archive, _, _ := crashImage(t, base)
	upper := filepath.Join(base, "upper")
	mnt := mountImage(t, archive, "--upper", upper)
	f, err := os.OpenFile(filepath.Join(mnt, "big.bin"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{'X'}, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	unmountOrDie(t, mnt)
	waitControlGone(t, upper)
	out := filepath.Join(base, "out.tar")
	temps := func() []string {
		m, _ := filepath.Glob(filepath.Join(base, ".out.tar.imgfs-tmp-*"))
		return m
	}
	commit := func(sig unix.Signal) {
		t.Helper()
		cmd := exec.Command(imgfsBin, "commit", "-q", "--cache-dir", cacheDir, "--upper", upper, "-o", out, archive)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 400 && len(temps()) == 0; i++ {
			time.Sleep(5 * time.Millisecond)
		}
		if len(temps()) == 0 {
			t.Fatalf("no temporary appeared beside %s", out)
		}
		cmd.Process.Signal(sig)
		cmd.Wait()
	}
	for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGINT} {
		commit(sig)
		if m := temps(); len(m) != 0 {
			t.Errorf("%v left %q", sig, m)
		}
	}
	commit(unix.SIGKILL)
	if len(temps()) == 0 {
		t.Fatal("SIGKILL left no temporary: the test did not kill a running commit")
	}
	if _, stderr, code := imgfs(t, "commit", "-q", "--cache-dir", cacheDir, "--upper", upper, "-o", out, archive); code != 0 {
		t.Fatalf("commit: exit %d: %s", code, stderr)
	}
	if m := temps(); len(m) != 0 {
		t.Errorf("the next commit left %q", m)
	}
	if _, stderr, code := imgfs(t, "inspect", "--cache-dir", cacheDir, out); code != 0 {
		t.Errorf("inspect of the commit: exit %d: %s", code, stderr)
	}
}

// TestOutputKilledIsOldOrNew runs export -o, import -o and commit -o over an existing OUT and stops
// each with SIGTERM, SIGINT or SIGKILL at a random point (seeded; IMGFS_CRASH_SEED picks another run)
// after its temporary appeared: OUT is then byte for byte the old file or the complete new one (as an
// uninterrupted run writes it), SIGTERM and SIGINT leave no temporary, and the next run to the same
// OUT reclaims what a SIGKILL left.
func TestOutputKilledIsOldOrNew(t *testing.T) {
	requireFUSE(t)
	seed := uint64(20261204)
	if s := os.Getenv("IMGFS_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	base := t.TempDir()
	archive, _, _ := crashImage(t, base)
	upper := filepath.Join(base, "upper")
	mnt := mountImage(t, archive, "--upper", upper)
	if err := os.WriteFile(filepath.Join(mnt, "tree/new.txt"), []byte("new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	unmountOrDie(t, mnt)
	waitControlGone(t, upper)
	flat := filepath.Join(base, "flat.tar")
	if _, stderr, code := imgfs(t, "export", "-q", "--cache-dir", cacheDir, "-o", flat, archive); code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	out := filepath.Join(base, "out.tar")
	old := []byte("the old output\n")
	temps := func() []string {
		m, _ := filepath.Glob(filepath.Join(base, ".out.tar.*")) // any temporary name
		return m
	}
	cmds := map[string][]string{
		"export": {"export", "-q", "--cache-dir", cacheDir, "--compression", "gzip", "-o", out, archive},
		"import": {"import", "-q", "--compression", "gzip", "-o", out, flat},
		"commit": {"commit", "-q", "--cache-dir", cacheDir, "--upper", upper, "-o", out, archive},
	}
	run := func(args []string) *exec.Cmd {
		cmd := exec.Command(imgfsBin, args...)
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	for _, name := range []string{"export", "import", "commit"} {
		args := cmds[name]
		os.Remove(out)
		cmd := run(args)
		// fresh lists the temporaries not in before: a run's own (a SIGKILL's stays until the next
		// run reclaims it).
		fresh := func(before []string) []string {
			var m []string
			for _, p := range temps() {
				if !slices.Contains(before, p) {
					m = append(m, p)
				}
			}
			return m
		}
		waitTemp := func(before []string) {
			for i := 0; i < 2000 && len(fresh(before)) == 0; i++ {
				time.Sleep(time.Millisecond)
			}
		}
		waitTemp(nil)
		start := time.Now() // the window in which OUT is written
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		took := max(time.Since(start), time.Millisecond)
		want, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		killedMidway := 0
		for it := range 9 {
			sig := []unix.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGKILL}[it%3]
			if err := os.WriteFile(out, old, 0o644); err != nil {
				t.Fatal(err)
			}
			before := temps()
			cmd := run(args)
			waitTemp(before)
			delay := time.Duration(r.Int64N(int64(took / 2)))
			time.Sleep(delay)
			midway := len(fresh(before)) != 0
			cmd.Process.Signal(sig)
			cmd.Wait()
			got, err := os.ReadFile(out)
			switch {
			case err != nil:
				t.Errorf("%s %v after %v: %v", name, sig, delay, err)
			case bytes.Equal(got, old):
				if midway {
					killedMidway++
				}
			case !bytes.Equal(got, want):
				t.Errorf("%s %v after %v: OUT is neither the old nor the new file (%d bytes)", name, sig, delay, len(got))
			}
			m := fresh(before)
			if sig != unix.SIGKILL && len(m) != 0 {
				t.Errorf("%s %v after %v left %q", name, sig, delay, m)
			}
			t.Logf("%s: %v %v after the temporary appeared (writing takes %v): old output %v, temporaries left %d",
				name, sig, delay.Round(time.Millisecond), took.Round(time.Millisecond), bytes.Equal(got, old), len(m))
		}
		if killedMidway == 0 {
			t.Errorf("%s: no run was stopped while writing", name)
		}
		if err := run(args).Wait(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m := temps(); len(m) != 0 {
			t.Errorf("%s: a run after the kills left %q", name, m)
		}
		if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
			t.Errorf("%s: the run after the kills wrote other bytes", name)
		}
	}
}

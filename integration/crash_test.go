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

// crashRig is a crash test's directories: the archive and its unpacked lower layer, the upper
// directory and its work directory, imgfs's and the kernel overlayfs's mount points.
type crashRig struct {
	archive, lower, upper, work, mnt, kmnt string
}

// newCrashRig makes the directories in a fresh directory without commas (it goes into overlay mount
// options) and writes crashImage.
func newCrashRig(t *testing.T) (*crashRig, []byte) {
	t.Helper()
	base, err := os.MkdirTemp("", "imgfs-crash-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	archive, lower, big := crashImage(t, base)
	c := &crashRig{archive: archive, lower: lower, upper: filepath.Join(base, "upper"),
		work: filepath.Join(base, ".upper.imgfs-work"), mnt: filepath.Join(base, "mnt"), kmnt: filepath.Join(base, "kmnt")}
	for _, d := range []string{c.mnt, c.kmnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return c, big
}

// remount is the step after a SIGKILL of the daemon: the dead mount detached, no temporary being made
// visible in the upper directory, a new daemon started, and the work directory reclaimed by it.
func (c *crashRig) remount(t *testing.T, it int) *daemon {
	t.Helper()
	unix.Unmount(c.mnt, unix.MNT_DETACH)
	filepath.WalkDir(c.upper, func(p string, e os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(e.Name(), ".wh..wh.") {
			t.Errorf("iteration %d: leftover %s", it, p)
		}
		return nil
	})
	d := startForeground(t, c.archive, c.mnt, "--upper", c.upper)
	if ents, err := os.ReadDir(c.work); err != nil || len(ents) != 0 {
		t.Errorf("iteration %d: work directory after the remount: %v %v", it, ents, err)
	}
	return d
}

// compareKernel checks that the kernel's overlayfs, with the upper directory as its top layer
// (read-only: it writes nothing there), shows view, imgfs's tree.
func (c *crashRig) compareKernel(t *testing.T, view map[string]*node) {
	t.Helper()
	if err := unix.Mount("overlay", c.kmnt, "overlay", unix.MS_RDONLY, "lowerdir="+c.upper+":"+c.lower); err != nil {
		t.Fatalf("mount overlay: %v", err)
	}
	compareTrees(t, walkTree(t, c.kmnt, true), view, true)
	if err := unix.Unmount(c.kmnt, 0); err != nil {
		t.Fatal(err)
	}
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
	c, big := newCrashRig(t)
	archive, upper, mnt := c.archive, c.upper, c.mnt
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
		d = c.remount(t, it)
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

		c.compareKernel(t, view)
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

// writeModel is what a crash may leave of one file under a write workload: the content at its last
// successful fsync and the writes issued since (each may or may not have reached the upper directory,
// in whole or in part, in any order of pages).
type writeModel struct {
	name    string
	synced  []byte
	pending []writeOp
}

type writeOp struct {
	off  int64
	data []byte
}

// current is the content if every pending write landed, in order.
func (m *writeModel) current() []byte {
	b := bytes.Clone(m.synced)
	for _, op := range m.pending {
		if end := op.off + int64(len(op.data)); end > int64(len(b)) {
			b = append(b, make([]byte, end-int64(len(b)))...)
		}
		copy(b[op.off:], op.data)
	}
	return b
}

// check reports how got departs from what the model allows: every fsynced byte is there unless a
// later write covers it, and every other byte is the synced one, one a pending write put there, or
// (past the synced end) a zero of a page not written back.
func (m *writeModel) check(got []byte) string {
	maxEnd := int64(len(m.synced))
	for _, op := range m.pending {
		maxEnd = max(maxEnd, op.off+int64(len(op.data)))
	}
	if int64(len(got)) < int64(len(m.synced)) || int64(len(got)) > maxEnd {
		return fmt.Sprintf("size %d, want %d to %d", len(got), len(m.synced), maxEnd)
	}
	for i, c := range got {
		if i < len(m.synced) && c == m.synced[i] || i >= len(m.synced) && c == 0 {
			continue
		}
		ok := false
		for _, op := range m.pending {
			if j := int64(i) - op.off; j >= 0 && j < int64(len(op.data)) && op.data[j] == c {
				ok = true
				break
			}
		}
		if !ok {
			return fmt.Sprintf("byte %d is %#x: neither the fsynced byte nor one written since", i, c)
		}
	}
	return ""
}

// TestCrashDuringWrites kills the mount daemon with SIGKILL at random points of a write workload
// (seeded; IMGFS_CRASH_SEED picks another run): appends and overwrites of a new file and of copied-up
// lower files, fsynced at random known points. After each remount every file holds its fsynced bytes
// (or bytes written after them), the work directory is reclaimed, nothing being made shows in the
// upper directory, and the kernel's overlayfs over the same upper directory shows the same tree.
func TestCrashDuringWrites(t *testing.T) {
	requireFUSE(t)
	seed := uint64(20261204)
	if s := os.Getenv("IMGFS_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 2))
	// The model itself catches a lost fsynced byte and a byte nobody wrote.
	probe := &writeModel{synced: []byte("synced"), pending: []writeOp{{4, []byte("EDMORE")}}}
	if probe.check([]byte("syncEDMO")) != "" || probe.check([]byte("syncex")) == "" || probe.check([]byte("sync")) == "" {
		t.Fatal("writeModel.check does not tell allowed from lost bytes")
	}
	c, _ := newCrashRig(t)
	models := []*writeModel{{name: "new.bin"}, {name: "tree/d00/f00"}, {name: "tree/d07/f13"}}
	for _, m := range models[1:] {
		b, err := os.ReadFile(filepath.Join(c.lower, m.name))
		if err != nil {
			t.Fatal(err)
		}
		m.synced = b
	}
	const iterations = 8
	for it := range iterations {
		d := startForeground(t, c.archive, c.mnt, "--upper", c.upper)
		// The workload's own generator, so that the kill delay does not depend on it.
		wr := rand.New(rand.NewPCG(seed, uint64(100+it)))
		var files []*os.File
		for _, m := range models {
			f, err := os.OpenFile(filepath.Join(c.mnt, m.name), os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		stop := make(chan struct{})
		done := make(chan int)
		go func() {
			ops := 0
			defer func() { done <- ops }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				k := wr.IntN(len(models))
				m, f := models[k], files[k]
				if wr.IntN(6) == 0 {
					if f.Sync() != nil {
						return
					}
					m.synced, m.pending = m.current(), nil
					continue
				}
				size := int64(len(m.current()))
				data := make([]byte, 1+wr.IntN(64<<10))
				for i := range data {
					data[i] = byte(wr.Uint32()) | 1 // never a zero: a zero byte is a page not written
				}
				off := size // append
				if size > 0 && (wr.IntN(2) == 0 || size > 2<<20) {
					off = wr.Int64N(size) // overwrite, perhaps extending
				}
				m.pending = append(m.pending, writeOp{off, data}) // before the write: a failed one may land
				if _, err := f.WriteAt(data, off); err != nil {
					return
				}
				ops++
			}
		}()
		delay := time.Duration(50+r.IntN(400)) * time.Millisecond
		time.Sleep(delay)
		d.kill(t)
		close(stop)
		ops := <-done
		for _, f := range files {
			f.Close()
		}
		t.Logf("iteration %d: SIGKILL %v into a write workload, after %d writes", it, delay, ops)
		d = c.remount(t, it)
		for _, m := range models {
			got, err := os.ReadFile(filepath.Join(c.mnt, m.name))
			if err != nil {
				t.Fatalf("iteration %d: %v", it, err)
			}
			if p := m.check(got); p != "" {
				t.Errorf("iteration %d: %s: %s", it, m.name, p)
			}
			m.synced, m.pending = got, nil
		}
		view := walkTree(t, c.mnt, true)
		d.stop(t)
		waitControlGone(t, c.upper)
		c.compareKernel(t, view)
		if t.Failed() {
			break
		}
	}
}

package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imgfs/imgfs/internal/sample"
	"github.com/imgfs/imgfs/internal/tartest"
)

// The fio jobs of the load test (and of bench/run-load.sh): see the job file.
const (
	loadFioJobs  = "testdata/load.fio"
	loadLowerLen = 24 << 20 // a lower fio file; the jobs work on its first loadFioSize bytes
	loadFioSize  = "16M"
	loadFioBytes = 16 << 20
)

// TestWritableLoad loads a writable mount for a bounded time with fio's verifying random read/write
// jobs (four at once: two over files of the image's layers, one of them gzip-compressed, so the first
// write of each copies it up under load; two over new files) and, at the same time, four creators/
// renamers that create, rewrite, rename across directories (their own and shared ones, lower and new,
// lower directories included) and remove files and directories, recording what they did. Then fio runs
// one more deterministic pass; after a remount of the same upper directory fio verifies that pass with
// --verify_only, the untouched tails of the lower fio files still hold the image's bytes, and the tree
// matches the creators' record. The daemon's resident memory is sampled throughout and must stay
// bounded. The worst completion latency (fio's clat max, and the creators' slowest operation) is
// logged, not asserted: the "no request starved for more than a second" is measured by
// bench/run-load.sh.
func TestWritableLoad(t *testing.T) {
	requireFUSE(t)
	requireTool(t, "fio")
	jobs, err := filepath.Abs(loadFioJobs)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	archive := filepath.Join(dir, "load.tar")
	lowerFio, lowerTree, want := loadImage(t, archive)
	upper := filepath.Join(dir, "upper")
	mnt := mountImage(t, archive, "--upper", upper)
	pid := daemonPID(t, mnt)
	peak := sampleRSS(pid)

	// Load: fio loops (each loop writes every block of its region once, then verifies them all) until
	// the runtime ends; the creators run as long as fio does.
	stop := make(chan struct{})
	churn := newChurn(t, mnt, lowerTree)
	var wg sync.WaitGroup
	for w := range churn.workers {
		wg.Add(1)
		go func() { defer wg.Done(); churn.run(w, stop) }()
	}
	start := time.Now()
	load := runFio(t, jobs, filepath.Join(mnt, "fio"), "12", "1000")
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)
	// One deterministic pass on top, to verify after the remount.
	last := runFio(t, jobs, filepath.Join(mnt, "fio"), "120", "1")
	rss, anon := peak()
	t.Logf("load %v: fio %s; creators: %d operations, slowest %v (%s; a remove is a whole rm -r)", elapsed.Round(time.Millisecond),
		load, churn.ops(), churn.worst().Round(time.Microsecond), churn.worstOp)
	t.Logf("final fio pass: %s", last)
	t.Logf("daemon peak VmRSS %d MiB (RssAnon %d MiB)", rss>>20, anon>>20)
	if rss == 0 {
		t.Fatalf("no RSS samples of the daemon %d", pid)
	}
	if rss > loadRSSLimit {
		t.Errorf("daemon peak VmRSS %d MiB under load, want < %d MiB", rss>>20, loadRSSLimit>>20)
	}
	if load.writes == 0 || load.reads < load.writes {
		t.Errorf("fio wrote %d and read %d bytes: it did not load the mount and verify what it wrote", load.writes, load.reads)
	}
	check := func(mnt, when string) {
		checkLowerTails(t, mnt, lowerFio, when)
		compareLoadTree(t, churn.expected(want), loadTree(t, filepath.Join(mnt, "tree")), when)
	}
	check(mnt, "after the load")
	unmountOrDie(t, mnt)
	// The daemon holds the upper directory's lock until it exits, a moment after the mount point is
	// gone: a remount at once can be refused ("in use by another mount"; 2 of about 60 runs), so wait.
	gone := time.Now()
	for i := 0; processRuns(pid); i++ {
		if i == 200 {
			t.Fatalf("the daemon %d still runs 10 s after its unmount", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the daemon exited %v after its mount point was gone", time.Since(gone).Round(time.Millisecond))

	mnt = mountImage(t, archive, "--upper", upper)
	pid = daemonPID(t, mnt)
	io0 := procIO(t, pid)
	runFio(t, jobs, filepath.Join(mnt, "fio"), "120", "1", "--verify_only")
	// fio counts the writes it only pretends in --verify_only; the daemon's own reads show that the
	// written blocks (about half of each region) were read back from the upper files.
	served := procIO(t, pid) - io0
	t.Logf("after the remount: fio --verify_only passed, the daemon read %d MiB", served>>20)
	if min := int64(len(lowerFio)+2) * loadFioBytes / 4; served < min {
		t.Errorf("fio --verify_only made the daemon read %d MiB, want at least %d MiB: it did not verify the files", served>>20, min>>20)
	}
	check(mnt, "after the remount")
}

// loadImage writes a two-layer image: the bottom layer (uncompressed) holds fio/l0 and a tree of
// directories and small files, the top layer (gzip) fio/l1 and more of the tree. It returns the
// lower fio files' contents, the lower tree's directories and files (relative to tree/) and the tree
// as loadTree reads it.
func loadImage(t *testing.T, archive string) (map[string][]byte, []string, map[string]string) {
	t.Helper()
	rng := rand.New(rand.NewChaCha8([32]byte{9}))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	fio := map[string][]byte{"l0": random(loadLowerLen), "l1": random(loadLowerLen)}
	bottom := []tartest.Member{tartest.Dir("fio"), {Name: "fio/l0", Body: fio["l0"], Mode: 0o644}, tartest.Dir("tree")}
	top := []tartest.Member{tartest.Dir("fio"), {Name: "fio/l1", Body: fio["l1"], Mode: 0o644}}
	var tree []string
	want := map[string]string{}
	add := func(layer *[]tartest.Member, name string, body []byte) {
		if body == nil {
			*layer = append(*layer, tartest.Dir("tree/"+name))
			want[name] = "dir"
		} else {
			*layer = append(*layer, tartest.Member{Name: "tree/" + name, Body: body, Mode: 0o644})
			want[name] = fmt.Sprintf("file %x", sha256.Sum256(body))
		}
		tree = append(tree, name)
	}
	// Shared directories s0..s3 (never renamed) and one directory per creator, w0..w3, with a
	// subdirectory; files are named after their directory so that every name is unique.
	for i := range churnWorkers {
		layer := &bottom
		if i%2 == 1 {
			layer = &top
		}
		for _, d := range []string{fmt.Sprintf("s%d", i), fmt.Sprintf("w%d", i), fmt.Sprintf("w%d/w%dsub", i, i)} {
			add(layer, d, nil)
			for f := range 12 {
				add(layer, fmt.Sprintf("%s/%s-l%02d", d, filepath.Base(d), f), random(rng.IntN(8<<10)))
			}
		}
	}
	if err := sample.WriteArchive(archive, "load:rw", [][]tartest.Member{bottom, top}, true); err != nil {
		t.Fatal(err)
	}
	return fio, tree, want
}

// fioResult is what runFio reports of a run: bytes moved, IOPS, the worst and 99th-percentile
// completion latency over all jobs and both directions, and the slowest fsync.
type fioResult struct {
	reads, writes int64
	iops          float64
	worst, p99    time.Duration
	fsync         time.Duration // the slowest fsync
}

func (r fioResult) String() string {
	return fmt.Sprintf("%d MiB read, %d MiB written, %.0f IOPS, worst completion %v, p99 %v, slowest fsync %v",
		r.reads>>20, r.writes>>20, r.iops, r.worst.Round(time.Microsecond), r.p99.Round(time.Microsecond),
		r.fsync.Round(time.Microsecond))
}

// runFio runs the load job file over dir (RUNTIME seconds at most, LOOPS passes) and fails the test
// unless fio exits 0 with no job error (verify_fatal: any block that does not verify is an error).
func runFio(t *testing.T, jobs, dir, runtime, loops string, extra ...string) fioResult {
	t.Helper()
	args := append([]string{"--output-format=json"}, extra...)
	cmd := exec.Command("fio", append(args, jobs)...)
	cmd.Dir = t.TempDir() // anything fio leaves in its working directory
	cmd.Env = append(os.Environ(), "DIR="+dir, "SIZE="+loadFioSize, "RUNTIME="+runtime, "LOOPS="+loops)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("fio %s: %v: %s", strings.Join(args, " "), err, stderr.Bytes())
	}
	type clat struct {
		Max        int64              `json:"max"`
		Percentile map[string]float64 `json:"percentile"`
	}
	type dir2 struct {
		IOBytes int64   `json:"io_bytes"`
		IOPS    float64 `json:"iops"`
		Clat    clat    `json:"clat_ns"`
	}
	var out struct {
		Jobs []struct {
			Name  string `json:"jobname"`
			Error int    `json:"error"`
			Read  dir2   `json:"read"`
			Write dir2   `json:"write"`
			Sync  struct {
				Lat clat `json:"lat_ns"`
			} `json:"sync"`
		} `json:"jobs"`
	}
	// fio may print notes before the JSON document.
	js := stdout.Bytes()
	if i := bytes.IndexByte(js, '{'); i > 0 {
		js = js[i:]
	}
	if err := json.Unmarshal(js, &out); err != nil || len(out.Jobs) == 0 {
		t.Fatalf("fio output: %v: %.400s", err, stdout.Bytes())
	}
	var r fioResult
	for _, j := range out.Jobs {
		if j.Error != 0 {
			t.Errorf("fio job %s: error %d: %s", j.Name, j.Error, stderr.Bytes())
		}
		r.reads += j.Read.IOBytes
		r.writes += j.Write.IOBytes
		r.iops += j.Read.IOPS + j.Write.IOPS
		for _, d := range []dir2{j.Read, j.Write} {
			r.worst = max(r.worst, time.Duration(d.Clat.Max))
			r.p99 = max(r.p99, time.Duration(d.Clat.Percentile["99.000000"]))
		}
		r.fsync = max(r.fsync, time.Duration(j.Sync.Lat.Max))
	}
	return r
}

// checkLowerTails checks that each lower fio file kept its size and, beyond the region the jobs
// write, the image's bytes (its copy-up under load copied all of it).
func checkLowerTails(t *testing.T, mnt string, lower map[string][]byte, when string) {
	t.Helper()
	for name, body := range lower {
		got, err := os.ReadFile(filepath.Join(mnt, "fio", name))
		if err != nil {
			t.Errorf("%s: %v", when, err)
			continue
		}
		if len(got) != len(body) {
			t.Errorf("%s: fio/%s has %d bytes, want %d", when, name, len(got), len(body))
		} else if !bytes.Equal(got[loadFioBytes:], body[loadFioBytes:]) {
			t.Errorf("%s: fio/%s: the bytes beyond the jobs' region differ from the image's", when, name)
		}
	}
}

// loadTree returns every entry below root: "dir" or "file <sha256>".
func loadTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.IsDir():
			out[rel] = "dir"
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = fmt.Sprintf("file %x", sha256.Sum256(b))
		default:
			out[rel] = "type " + d.Type().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func compareLoadTree(t *testing.T, want, got map[string]string, when string) {
	t.Helper()
	var problems []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			problems = append(problems, "missing "+p)
		} else if g != w {
			problems = append(problems, fmt.Sprintf("%s: %s, want %s", p, g, w))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			problems = append(problems, "unexpected "+p)
		}
	}
	slices.Sort(problems)
	if len(problems) > 0 {
		t.Errorf("%s: the tree differs from the creators' record in %d entries (of %d):\n%s", when, len(problems), len(want),
			strings.Join(problems[:min(len(problems), 30)], "\n"))
	} else {
		t.Logf("%s: the tree (%d entries) matches the creators' record", when, len(want))
	}
}

const churnWorkers = 4

// churn is the creators/renamers: each worker owns some entries (the lower files of its directory
// wN and of the shared directory sN, the directory wN itself, and what it creates), and only it
// changes them or puts anything into a directory it owns; all workers create in and rename through
// the shared directories s0..s3 and tree/ itself, which nobody renames.
type churn struct {
	t       *testing.T
	root    string // the mount's tree/
	workers int

	mu      sync.Mutex
	objs    [][]*churnObj // per worker
	nops    int
	slowest time.Duration
	worstOp string
}

// churnObj is one entry a worker owns: in a shared directory (parent nil, dir names it) or in a
// directory the same worker owns.
type churnObj struct {
	parent *churnObj
	shared string // "", "s0".."s3" for a shared directory ("" with parent nil: tree/ itself)
	name   string
	isDir  bool
	body   []byte // nil: a lower file not rewritten (its content is the image's)
	lower  string // the lower path it started as
	gone   bool
}

func (o *churnObj) path() string {
	if o.parent != nil {
		return filepath.Join(o.parent.path(), o.name)
	}
	return filepath.Join(o.shared, o.name)
}

func (o *churnObj) below(d *churnObj) bool {
	for p := o; p != nil; p = p.parent {
		if p == d {
			return true
		}
	}
	return false
}

func newChurn(t *testing.T, mnt string, lowerTree []string) *churn {
	c := &churn{t: t, root: filepath.Join(mnt, "tree"), workers: churnWorkers, objs: make([][]*churnObj, churnWorkers)}
	byPath := map[string]*churnObj{}
	for _, p := range lowerTree { // parents come before their children
		var w int
		fmt.Sscanf(strings.TrimLeft(strings.SplitN(p, "/", 2)[0], "sw"), "%d", &w)
		dir, base := filepath.Split(p)
		dir = filepath.Clean(dir)
		o := &churnObj{name: base, lower: p}
		if !strings.Contains(p, "/") {
			if p[0] == 's' {
				continue // shared: not an object
			}
		} else if parent := byPath[dir]; parent != nil {
			o.parent = parent
		} else {
			o.shared = dir
		}
		o.isDir = !strings.Contains(base, "-l")
		byPath[p] = o
		c.objs[w] = append(c.objs[w], o)
	}
	return c
}

func (c *churn) ops() int { c.mu.Lock(); defer c.mu.Unlock(); return c.nops }

func (c *churn) worst() time.Duration { c.mu.Lock(); defer c.mu.Unlock(); return c.slowest }

// run is worker w: random operations on its entries until stop is closed (at least 50).
func (c *churn) run(w int, stop chan struct{}) {
	rng := rand.New(rand.NewPCG(uint64(w), 42))
	shared := []string{"", "s0", "s1", "s2", "s3"}
	for n := 0; ; n++ {
		if n >= 50 {
			select {
			case <-stop:
				return
			default:
			}
		}
		live := c.live(w)
		var files, dirs []*churnObj
		for _, o := range live {
			if o.isDir {
				dirs = append(dirs, o)
			} else {
				files = append(files, o)
			}
		}
		// A destination: a shared directory, or one of the worker's directories.
		dest := func() (*churnObj, string) {
			if len(dirs) > 0 && rng.IntN(2) == 0 {
				return dirs[rng.IntN(len(dirs))], ""
			}
			return nil, shared[rng.IntN(len(shared))]
		}
		place := func(o *churnObj, parent *churnObj, sh string) { o.parent, o.shared = parent, sh }
		op := rng.IntN(10)
		if op == 9 && rng.IntN(3) > 0 {
			op = 8 // fewer removals of whole directories, so that the final tree keeps some depth
		}
		if len(live) > 150 {
			op = 6 // keep the tree from growing without bound
		}
		var what string
		var err error
		start := time.Now()
		switch {
		case op <= 1 || len(files) == 0: // create a file
			o := &churnObj{name: fmt.Sprintf("w%dc%d", w, n), body: bytes.Repeat([]byte(fmt.Sprintf("worker %d file %d\n", w, n)), rng.IntN(2000))}
			p, sh := dest()
			place(o, p, sh)
			what = "create " + o.path()
			if err = os.WriteFile(filepath.Join(c.root, o.path()), o.body, 0o644); err == nil {
				c.add(w, o)
			}
		case op == 2: // rewrite a file (a lower one is copied up)
			o := files[rng.IntN(len(files))]
			body := []byte(fmt.Sprintf("rewritten by %d at %d\n", w, n))
			what = "rewrite " + o.path()
			if err = os.WriteFile(filepath.Join(c.root, o.path()), body, 0o644); err == nil {
				c.mu.Lock()
				o.body = body
				c.mu.Unlock()
			}
		case op <= 5: // rename a file, often to another directory
			o := files[rng.IntN(len(files))]
			p, sh := dest()
			from := o.path()
			c.mu.Lock()
			old := *o
			place(o, p, sh)
			o.name = fmt.Sprintf("w%dr%d", w, n)
			to := o.path()
			c.mu.Unlock()
			what = "rename " + from + " " + to
			if err = os.Rename(filepath.Join(c.root, from), filepath.Join(c.root, to)); err != nil {
				c.mu.Lock()
				*o = old
				c.mu.Unlock()
			}
		case op == 6: // unlink a file
			o := files[rng.IntN(len(files))]
			what = "unlink " + o.path()
			if err = os.Remove(filepath.Join(c.root, o.path())); err == nil {
				c.mu.Lock()
				o.gone = true
				c.mu.Unlock()
			}
		case op == 7: // make a directory
			o := &churnObj{name: fmt.Sprintf("w%dd%d", w, n), isDir: true}
			p, sh := dest()
			place(o, p, sh)
			what = "mkdir " + o.path()
			if err = os.Mkdir(filepath.Join(c.root, o.path()), 0o755); err == nil {
				c.add(w, o)
			}
		case op == 8 && len(dirs) > 0: // rename a directory (lower ones too), not into itself
			o := dirs[rng.IntN(len(dirs))]
			p, sh := dest()
			if p != nil && p.below(o) {
				p, sh = nil, shared[rng.IntN(len(shared))]
			}
			from := o.path()
			c.mu.Lock()
			old := *o
			place(o, p, sh)
			o.name = fmt.Sprintf("w%dR%d", w, n)
			to := o.path()
			c.mu.Unlock()
			what = "rename " + from + " " + to
			if err = os.Rename(filepath.Join(c.root, from), filepath.Join(c.root, to)); err != nil {
				c.mu.Lock()
				*o = old
				c.mu.Unlock()
			}
		case len(dirs) > 0: // remove a directory with everything in it
			o := dirs[rng.IntN(len(dirs))]
			what = "remove " + o.path()
			if err = os.RemoveAll(filepath.Join(c.root, o.path())); err == nil {
				c.mu.Lock()
				for _, x := range c.objs[w] {
					if x.below(o) {
						x.gone = true
					}
				}
				c.mu.Unlock()
			}
		default:
			continue
		}
		d := time.Since(start)
		c.mu.Lock()
		c.nops++
		if d > c.slowest {
			c.slowest, c.worstOp = d, what
		}
		c.mu.Unlock()
		if err != nil {
			c.t.Errorf("creator %d: %s: %v", w, what, err)
			return
		}
	}
}

func (c *churn) live(w int) []*churnObj {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*churnObj
	for _, o := range c.objs[w] {
		if !o.gone {
			out = append(out, o)
		}
	}
	return out
}

func (c *churn) add(w int, o *churnObj) {
	c.mu.Lock()
	c.objs[w] = append(c.objs[w], o)
	c.mu.Unlock()
}

// expected is the tree the workers' record says tree/ holds; lower is the image's tree (for the
// content of lower files never rewritten).
func (c *churn) expected(lower map[string]string) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	want := map[string]string{}
	for i := range churnWorkers {
		want[fmt.Sprintf("s%d", i)] = "dir"
	}
	for _, objs := range c.objs {
		for _, o := range objs {
			switch {
			case o.gone:
			case o.isDir:
				want[o.path()] = "dir"
			case o.body != nil:
				want[o.path()] = fmt.Sprintf("file %x", sha256.Sum256(o.body))
			default:
				want[o.path()] = lower[o.lower]
			}
		}
	}
	return want
}

// processRuns reports whether process pid exists and has not exited (a zombie has).
func processRuns(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, after, _ := bytes.Cut(stat, []byte(") "))
	return len(after) > 0 && after[0] != 'Z'
}

package integration

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/imgfs/imgfs/internal/tartest"
)

type cacheEntry struct {
	Key      string   `json:"key"`
	Archives []string `json:"archives"`
	InUse    bool     `json:"inUse"`
}

// waitUnused waits until no key in the cache is in use: an unmounted daemon lets go of its keys as
// it exits, a moment after the kernel let go of the mount point.
func waitUnused(t *testing.T, dir string, archives ...string) {
	t.Helper()
	for i := 0; ; i++ {
		busy := false
		for _, e := range cacheLs(t, dir) {
			for _, a := range archives {
				busy = busy || (e.InUse && slices.Contains(e.Archives, a))
			}
		}
		if !busy {
			return
		}
		if i == 600 {
			t.Fatalf("keys of %v still in use a minute after unmount", archives)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func cacheLs(t *testing.T, dir string) []cacheEntry {
	t.Helper()
	out, stderr, code := imgfs(t, "cache", "ls", "--json", "--cache-dir", dir)
	if code != 0 {
		t.Fatalf("imgfs cache ls: exit %d: %s", code, stderr)
	}
	var r struct {
		Entries []cacheEntry `json:"entries"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("imgfs cache ls --json: %v: %s", err, out)
	}
	return r.Entries
}

// keysOf returns the keys cache ls says archive used, sorted.
func keysOf(es []cacheEntry, archive string) []string {
	var ks []string
	for _, e := range es {
		if slices.Contains(e.Archives, archive) {
			ks = append(ks, e.Key)
		}
	}
	slices.Sort(ks)
	return ks
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// TestCachePrune: cache prune --all, twice at once, while two mounts are live and read: the mounts
// keep serving the same bytes, their keys (layer tables, a gzip layer's restart points, a gzipped
// archive's outer stream) stay, the keys of archives no longer mounted go; mount --cache-max-size
// prunes unused keys in the background and keeps its own.
func TestCachePrune(t *testing.T) {
	requireFUSE(t)
	dir := t.TempDir()
	cdir := filepath.Join(dir, "cache")
	bodies := map[string]map[string][]byte{}
	mk := func(name string, gzLayer, gzOuter bool) string {
		files := map[string][]byte{}
		var ms []tartest.Member
		for i := range 6 {
			n := fmt.Sprintf("%s/file-%d", name, i)
			files[n] = bytes.Repeat([]byte(name+fmt.Sprint(i)), 3000+i*117)
			ms = append(ms, tartest.Member{Name: n, Body: files[n]})
		}
		layer := tartest.Tar(t, ms...)
		blob := layer
		if gzLayer {
			blob = gz(layer)
		}
		p := filepath.Join(dir, name+".tar")
		writeOCI(t, p, blob, digest.FromBytes(blob), digest.FromBytes(layer), true)
		if gzOuter {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			os.Remove(p)
			p += ".gz"
			if err := os.WriteFile(p, gz(b), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		bodies[p] = files
		return p
	}
	a, b, c, d := mk("alpha", true, true), mk("bravo", false, false), mk("charlie", true, false), mk("delta", false, true)
	mount := func(archive string, flags ...string) string {
		t.Helper()
		mnt := t.TempDir()
		args := append([]string{"mount", "--quiet", "--cache-dir", cdir}, flags...)
		_, stderr, code := imgfs(t, append(args, archive, mnt)...)
		if code != 0 {
			t.Fatalf("imgfs mount %s: exit %d: %s", archive, code, stderr)
		}
		t.Cleanup(func() { unmountOrDie(t, mnt) })
		return mnt
	}
	check := func(archive, mnt string) {
		t.Helper()
		for n, want := range bodies[archive] {
			got, err := os.ReadFile(filepath.Join(mnt, n))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: %s: read %d bytes, %v; want %d bytes", archive, n, len(got), err, len(want))
			}
		}
	}
	index := func(archive string) {
		t.Helper()
		mnt := mount(archive)
		check(archive, mnt)
		unmountOrDie(t, mnt)
		waitUnused(t, cdir, archive)
	}
	index(c)
	index(d)
	es := cacheLs(t, cdir)
	if kc, kd := keysOf(es, c), keysOf(es, d); len(kc) != 1 || len(kd) != 2 {
		t.Fatalf("cache ls after indexing: %s has keys %v (want its layer), %s has %v (want layer and outer stream); all: %+v", c, kc, d, kd, es)
	}

	// mount --cache-max-size prunes, in the background, every key it does not hold.
	ma := mount(a, "--cache-max-size", "1")
	check(a, ma)
	for i := 0; ; i++ {
		es = cacheLs(t, cdir)
		if len(keysOf(es, c)) == 0 && len(keysOf(es, d)) == 0 {
			break
		}
		if i == 600 {
			t.Fatalf("mount --cache-max-size 1: unused keys still there: %+v", es)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ka := keysOf(es, a); len(ka) != 2 {
		t.Fatalf("mount --cache-max-size 1: its own keys %v, want layer and outer stream (all: %+v)", ka, es)
	}

	mb := mount(b)
	index(c)
	index(d)
	before := cacheLs(t, cdir)
	liveKeys := append(keysOf(before, a), keysOf(before, b)...)
	slices.Sort(liveKeys)
	if len(liveKeys) != 3 || len(before) != 6 {
		t.Fatalf("before prune: live keys %v, all %+v", liveKeys, before)
	}

	// Two prunes at once while both mounts read.
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for _, m := range [][2]string{{a, ma}, {b, mb}} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				check(m[0], m[1])
			}
		}()
	}
	var prunes sync.WaitGroup
	outs := make([]string, 2)
	for i := range outs {
		prunes.Add(1)
		go func() {
			defer prunes.Done()
			out, err := exec.Command(imgfsBin, "cache", "prune", "--all", "--cache-dir", cdir).CombinedOutput()
			if err != nil {
				t.Errorf("imgfs cache prune --all: %v: %s", err, out)
			}
			outs[i] = string(out)
		}()
	}
	prunes.Wait()
	close(stop)
	readers.Wait()
	t.Logf("prunes: %q", outs)
	after := cacheLs(t, cdir)
	var left []string
	for _, e := range after {
		left = append(left, e.Key)
	}
	slices.Sort(left)
	if !slices.Equal(left, liveKeys) {
		t.Errorf("after prune --all: keys %v, want exactly the live mounts' %v", left, liveKeys)
	}
	if !strings.Contains(outs[0]+outs[1], "3 in use kept") {
		t.Errorf("prune output does not report the 3 keys in use: %q", outs)
	}
	check(a, ma)
	check(b, mb)

	// Unmounted, nothing holds the keys any more.
	for _, e := range after {
		if !e.InUse {
			t.Errorf("cache ls: a live mount's key %s is not shown in use", e.Key)
		}
	}
	unmountOrDie(t, ma)
	unmountOrDie(t, mb)
	waitUnused(t, cdir, a, b)
	if out, stderr, code := imgfs(t, "cache", "prune", "--all", "--cache-dir", cdir); code != 0 {
		t.Fatalf("imgfs cache prune --all: exit %d: %s %s", code, out, stderr)
	}
	if es := cacheLs(t, cdir); len(es) != 0 {
		t.Errorf("after unmount and prune --all: %+v", es)
	}
	// The cache works again from scratch.
	index(a)
}

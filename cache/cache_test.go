package cache

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func hex64(c byte) string { return strings.Repeat(string(c), 64) }

func TestSelect(t *testing.T) {
	now := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	es := []Entry{
		{Key: "new", Size: 100, LastUse: now.Add(-1 * day)},
		{Key: "old", Size: 300, LastUse: now.Add(-9 * day)},
		{Key: "mid", Size: 200, LastUse: now.Add(-5 * day)},
	}
	tests := []struct {
		name string
		opts PruneOptions
		busy []string
		want []string
	}{
		{"nothing asked", PruneOptions{}, nil, nil},
		{"all", PruneOptions{All: true}, nil, []string{"old", "mid", "new"}},
		{"all but busy", PruneOptions{All: true}, []string{"mid"}, []string{"old", "new"}},
		{"older than 4 days", PruneOptions{OlderThan: 4 * day}, nil, []string{"old", "mid"}},
		{"older than 10 days", PruneOptions{OlderThan: 10 * day}, nil, nil},
		{"max size keeps the newest", PruneOptions{MaxSize: 300}, nil, []string{"old"}},
		{"max size 250", PruneOptions{MaxSize: 250}, nil, []string{"old", "mid"}},
		{"max size over total", PruneOptions{MaxSize: 600}, nil, nil},
		{"max size zero bytes means no limit", PruneOptions{MaxSize: 0}, nil, nil},
		{"max size skips busy oldest, takes next", PruneOptions{MaxSize: 350}, []string{"old"}, []string{"mid", "new"}},
		{"max size skips busy oldest, stops when under", PruneOptions{MaxSize: 450}, []string{"old"}, []string{"mid"}},
		{"max size all busy", PruneOptions{MaxSize: 1}, []string{"old", "mid", "new"}, nil},
		{"age and size together", PruneOptions{OlderThan: 6 * day, MaxSize: 100}, nil, []string{"old", "mid"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Now = now
			var asked []string
			got := Select(es, tt.opts, func(e Entry) bool {
				asked = append(asked, e.Key)
				return slices.Contains(tt.busy, e.Key)
			})
			var keys []string
			for _, e := range got {
				keys = append(keys, e.Key)
			}
			if !slices.Equal(keys, tt.want) {
				t.Errorf("Select = %v, want %v (asked %v)", keys, tt.want, asked)
			}
		})
	}
}

// fakeCache writes the files of a layer key into dir the way index and compression lay them out.
func fakeCache(t *testing.T, dir, key string, age time.Duration) []string {
	t.Helper()
	a, b, _ := strings.Cut(key, "-")
	files := []string{
		filepath.Join(dir, "index", "v3", "sha256", key+".table"),
		filepath.Join(dir, "stream", "v2", "sha256", key+".gzi"),
		filepath.Join(dir, "verified", "v1", a[:8]+b[:8]+".json"),
	}
	for i, p := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		data := strings.Repeat("x", 10*(i+1))
		if i == 2 {
			data = `{"version":1,"digest":"sha256:` + a + `","diff_id":"sha256:` + b + `"}`
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		mt := time.Now().Add(-age)
		os.Chtimes(p, mt, mt)
	}
	return files
}

func TestListAndRecordUse(t *testing.T) {
	dir := t.TempDir()
	k1, k2 := hex64('a')+"-"+hex64('b'), hex64('c')+"-"+hex64('d')
	fakeCache(t, dir, k1, time.Hour)
	fakeCache(t, dir, k2, 48*time.Hour)
	if err := RecordUse(dir, k2, "/srv/x.tar"); err != nil {
		t.Fatal(err)
	}
	if err := RecordUse(dir, k2, "/srv/y.tar"); err != nil {
		t.Fatal(err)
	}
	if err := RecordUse(dir, k2, "/srv/x.tar"); err != nil {
		t.Fatal(err)
	}
	es, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].Key != k1 || es[1].Key != k2 {
		t.Fatalf("List = %+v, want %s (older mtime) then %s (just used)", es, k1, k2)
	}
	e := es[1]
	if e.Table != 10 || e.Stream != 20 || e.Digest != "sha256:"+hex64('c') || e.DiffID != "sha256:"+hex64('d') {
		t.Errorf("entry %+v", e)
	}
	if !slices.Equal(e.Archives, []string{"/srv/y.tar", "/srv/x.tar"}) {
		t.Errorf("archives %v", e.Archives)
	}
	if len(e.Files) != 4 || e.Size != e.Table+e.Stream+e.Other {
		t.Errorf("files %v size %d", e.Files, e.Size)
	}
}

func TestPruneSkipsLockedKeys(t *testing.T) {
	dir := t.TempDir()
	live, idle := hex64('a')+"-"+hex64('b'), hex64('c')+"-"+hex64('d')
	liveFiles := fakeCache(t, dir, live, time.Hour)
	idleFiles := fakeCache(t, dir, idle, time.Hour)
	l, err := Lock(dir, live)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if es, err := List(dir); err != nil || len(es) != 2 || es[0].InUse == es[1].InUse || !InUse(dir, live) || InUse(dir, idle) {
		t.Fatalf("List with %s held: %+v, %v", live, es, err)
	}
	res, err := Prune(dir, PruneOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 1 || res.Removed[0].Key != idle || len(res.Busy) != 1 || res.Busy[0].Key != live {
		t.Fatalf("prune: %+v", res)
	}
	for _, p := range liveFiles {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("live key's file gone: %v", err)
		}
	}
	for _, p := range append(idleFiles, lockPath(dir, idle)) {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s: still there (%v)", p, err)
		}
	}
	l.Close()
	if res, err := Prune(dir, PruneOptions{All: true}); err != nil || len(res.Removed) != 1 {
		t.Fatalf("after release: %+v, %v", res, err)
	}
	if es, _ := List(dir); len(es) != 0 {
		t.Errorf("left %+v", es)
	}
}

// Concurrent prunes and lockers: every key a locker holds while prunes run survives.
func TestConcurrentPrunes(t *testing.T) {
	dir := t.TempDir()
	var keys []string
	for _, c := range "abcdef" {
		k := hex64(byte(c)) + "-" + hex64('0')
		keys = append(keys, k)
		fakeCache(t, dir, k, time.Hour)
	}
	held := keys[:3]
	var leases []*Lease
	for _, k := range held {
		l, err := Lock(dir, k)
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, l)
	}
	var wg sync.WaitGroup
	removed := make([]int, 4)
	for i := range removed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := Prune(dir, PruneOptions{All: true})
			if err != nil {
				t.Error(err)
			}
			removed[i] = len(res.Removed)
		}()
	}
	// Lockers coming and going meanwhile on a key a prune may be removing.
	for range 20 {
		l, err := Lock(dir, keys[5])
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
	}
	wg.Wait()
	es, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range es {
		left = append(left, e.Key)
	}
	slices.Sort(left)
	if !slices.Equal(left, held) {
		t.Errorf("left %v, want the held keys %v", left, held)
	}
	if n := removed[0] + removed[1] + removed[2] + removed[3]; n != 3 {
		t.Errorf("prunes removed %v keys, want 3 in all", removed)
	}
	for _, l := range leases {
		l.Close()
	}
}

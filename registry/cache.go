package registry

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/imgfs/imgfs/internal/atomicfile"
)

// Cache is the on-disk chunk cache: chunk i of blob d in Dir/chunks/v1/<algorithm>/<hex>/<i>, at most
// Max bytes in all, the least recently used chunks (by modification time, which a hit refreshes)
// evicted first. Several processes may share it: files are written atomically and a chunk of the
// wrong length is dropped.
type Cache struct {
	dir string
	max int64

	mu    sync.Mutex
	total int64 // bytes stored, as far as this process knows; -1 until scanned
}

// NewCache returns the chunk cache under cacheDir holding at most max bytes (0: nothing is cached).
func NewCache(cacheDir string, max int64) *Cache {
	return &Cache{dir: filepath.Join(cacheDir, "chunks", "v1"), max: max, total: -1}
}

func (c *Cache) path(d digest.Digest, i int64) (string, bool) {
	if d.Validate() != nil {
		return "", false
	}
	if _, err := hex.DecodeString(d.Encoded()); err != nil {
		return "", false
	}
	return filepath.Join(c.dir, string(d.Algorithm()), d.Encoded(), strconv.FormatInt(i, 10)), true
}

func (c *Cache) get(d digest.Digest, i, length int64) ([]byte, bool) {
	if c == nil || c.max <= 0 {
		return nil, false
	}
	p, ok := c.path(d, i)
	if !ok {
		return nil, false
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, false
	}
	if int64(len(data)) != length {
		os.Remove(p)
		return nil, false
	}
	now := time.Now()
	os.Chtimes(p, now, now)
	return data, true
}

func (c *Cache) put(d digest.Digest, i int64, data []byte) {
	if c == nil || c.max <= 0 || int64(len(data)) > c.max {
		return
	}
	p, ok := c.path(d, i)
	if !ok {
		return
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return
	}
	f, err := atomicfile.Create(p, "")
	if err != nil {
		return
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return
	}
	if f.Commit() != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.total >= 0 {
		c.total += int64(len(data))
	}
	if c.total < 0 || c.total > c.max {
		c.evict()
	}
}

// evict scans the cache and removes the least recently used chunks until it holds at most 90% of max.
func (c *Cache) evict() {
	type ent struct {
		p    string
		size int64
		t    time.Time
	}
	var ents []ent
	var total int64
	filepath.WalkDir(c.dir, func(p string, de os.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return nil
		}
		if st, err := de.Info(); err == nil {
			ents = append(ents, ent{p, st.Size(), st.ModTime()})
			total += st.Size()
		}
		return nil
	})
	if total > c.max {
		sort.Slice(ents, func(a, b int) bool { return ents[a].t.Before(ents[b].t) })
		for _, e := range ents {
			if total <= c.max*9/10 {
				break
			}
			if os.Remove(e.p) == nil {
				total -= e.size
			}
		}
	}
	c.total = total
}

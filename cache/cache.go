// Package cache lists and prunes imgfs's cache directory: the layer tables (index/), the stream
// restart points and decompressed copies (stream/) and the verified records (verified/), grouped by
// the key they are stored under. It also owns the two small files it adds per key: a use record
// (uses/v1/<key>.json: when the key was last used and by which archives) and a lock file
// (locks/<key>.lock). Every process that uses a key holds a shared flock on its lock file for as long
// as it uses it; prune takes it exclusive without waiting and skips a key it cannot get, so what a live
// mount uses is never removed.
//
// A key is "<blob hex>-<diff_id hex>" for a layer (the pair that was verified) or "<blob hex>" for a
// stream keyed by one digest (a compressed archive's outer stream).
package cache

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/imgfs/imgfs/internal/atomicfile"
	"github.com/imgfs/imgfs/internal/digests"
)

// maxArchives bounds the archive paths remembered per key (the most recent are kept).
const maxArchives = 32

// Key returns the cache key of a layer with blob digest d and diff_id x, or of a stream keyed by d
// alone when x is empty. ok is false when a digest is not a valid sha256 (nothing is cached for it).
func Key(d, x digest.Digest) (key string, ok bool) {
	hd, err := digests.CheckSHA256(d)
	if err != nil {
		return "", false
	}
	if x == "" {
		return hd, true
	}
	hx, err := digests.CheckSHA256(x)
	if err != nil {
		return "", false
	}
	return hd + "-" + hx, true
}

// validKey reports whether s has the form of a key (it becomes part of file names).
func validKey(s string) bool {
	a, b, two := strings.Cut(s, "-")
	return isHex64(a) && (!two || isHex64(b))
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// Entry is what the cache holds under one key.
type Entry struct {
	Key      string    `json:"key"`
	Digest   string    `json:"digest"`
	DiffID   string    `json:"diffId,omitempty"`
	Table    int64     `json:"tableBytes"`  // layer tables, any format version
	Stream   int64     `json:"streamBytes"` // restart points (.gzi, .zti)
	Other    int64     `json:"otherBytes"`  // decompressed copies (.raw), verified and use records
	Size     int64     `json:"totalBytes"`
	LastUse  time.Time `json:"lastUse"`
	Archives []string  `json:"archives"` // the archives that used it, most recent last
	InUse    bool      `json:"inUse"`    // a live process holds its lease (set by List)
	// Files are the key's files (lock file excluded), absolute paths.
	Files []string `json:"-"`
}

type useRecord struct {
	LastUse  time.Time `json:"last_use"`
	Archives []string  `json:"archives"`
}

func usePath(dir, key string) string  { return filepath.Join(dir, "uses", "v1", key+".json") }
func lockPath(dir, key string) string { return filepath.Join(dir, "locks", key+".lock") }

// RecordUse notes that archive used key now. The caller holds the key's lock (Lock), so a prune cannot
// remove the record being rewritten; two concurrent users may lose one archive path, not the record.
func RecordUse(dir, key, archive string) error {
	if !validKey(key) {
		return fmt.Errorf("cache: invalid key %q", key)
	}
	p := usePath(dir, key)
	var r useRecord
	if b, err := os.ReadFile(p); err == nil {
		_ = json.Unmarshal(b, &r) // a damaged record is replaced
	}
	r.LastUse = time.Now().UTC()
	if archive != "" {
		if abs, err := filepath.Abs(archive); err == nil {
			archive = abs
		}
		r.Archives = slices.DeleteFunc(r.Archives, func(s string) bool { return s == archive })
		r.Archives = append(r.Archives, archive)
		if len(r.Archives) > maxArchives {
			r.Archives = r.Archives[len(r.Archives)-maxArchives:]
		}
	}
	b, err := json.Marshal(&r)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("recording cache use: %w", err)
	}
	f, err := atomicfile.Create(p, ".use-*.tmp")
	if err != nil {
		return fmt.Errorf("recording cache use: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Abort()
		return fmt.Errorf("recording cache use: %w", err)
	}
	if err := f.Commit(); err != nil {
		return fmt.Errorf("recording cache use: %w", err)
	}
	return nil
}

// List returns the cache's entries under dir, oldest last use first. A missing dir is an empty cache.
func List(dir string) ([]Entry, error) {
	byKey := map[string]*Entry{}
	get := func(key string) *Entry {
		e := byKey[key]
		if e == nil {
			e = &Entry{Key: key}
			a, b, _ := strings.Cut(key, "-")
			e.Digest = "sha256:" + a
			if b != "" {
				e.DiffID = "sha256:" + b
			}
			byKey[key] = e
		}
		return e
	}
	var mtimes = map[string]time.Time{}
	add := func(e *Entry, path string, size int64, mt time.Time, into *int64) {
		*into += size
		e.Size += size
		e.Files = append(e.Files, path)
		if mt.After(mtimes[e.Key]) {
			mtimes[e.Key] = mt
		}
	}
	// Tables: index/v*/sha256/<key>.table.
	if err := walkFiles(filepath.Join(dir, "index"), func(p string, fi fs.FileInfo) {
		if key, ok := strings.CutSuffix(fi.Name(), ".table"); ok && validKey(key) {
			e := get(key)
			add(e, p, fi.Size(), fi.ModTime(), &e.Table)
		}
	}); err != nil {
		return nil, err
	}
	// Streams: stream/v*/sha256/<key>.{gzi,zti,raw}.
	if err := walkFiles(filepath.Join(dir, "stream"), func(p string, fi fs.FileInfo) {
		ext := filepath.Ext(fi.Name())
		key := strings.TrimSuffix(fi.Name(), ext)
		if !validKey(key) {
			return
		}
		e := get(key)
		switch ext {
		case ".gzi", ".zti":
			add(e, p, fi.Size(), fi.ModTime(), &e.Stream)
		case ".raw":
			add(e, p, fi.Size(), fi.ModTime(), &e.Other)
		}
	}); err != nil {
		return nil, err
	}
	// Verified records: verified/v*/<hash>.json, naming their pair inside.
	if err := walkFiles(filepath.Join(dir, "verified"), func(p string, fi fs.FileInfo) {
		if !strings.HasSuffix(fi.Name(), ".json") {
			return
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return
		}
		var r struct {
			Digest digest.Digest `json:"digest"`
			DiffID digest.Digest `json:"diff_id"`
		}
		if json.Unmarshal(b, &r) != nil {
			return
		}
		if key, ok := Key(r.Digest, r.DiffID); ok && r.DiffID != "" {
			e := get(key)
			add(e, p, fi.Size(), fi.ModTime(), &e.Other)
		}
	}); err != nil {
		return nil, err
	}
	// Use records: they name the last use; a key with only a use record is still listed (and pruned).
	if err := walkFiles(filepath.Join(dir, "uses", "v1"), func(p string, fi fs.FileInfo) {
		key, ok := strings.CutSuffix(fi.Name(), ".json")
		if !ok || !validKey(key) {
			return
		}
		e := get(key)
		add(e, p, fi.Size(), time.Time{}, &e.Other)
		var r useRecord
		if b, err := os.ReadFile(p); err == nil && json.Unmarshal(b, &r) == nil {
			e.LastUse = r.LastUse
			e.Archives = r.Archives
		}
	}); err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(byKey))
	for _, e := range byKey {
		if e.LastUse.IsZero() {
			e.LastUse = mtimes[e.Key].UTC() // built before use records existed, or never recorded
		}
		if e.Archives == nil {
			e.Archives = []string{}
		}
		e.InUse = InUse(dir, e.Key)
		out = append(out, *e)
	}
	sortOldestFirst(out)
	return out, nil
}

func sortOldestFirst(es []Entry) {
	slices.SortFunc(es, func(a, b Entry) int {
		if c := a.LastUse.Compare(b.LastUse); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
}

// walkFiles calls fn for every regular file under root whose name does not start with a dot
// (temporary files); a missing root is empty.
func walkFiles(root string, fn func(path string, fi fs.FileInfo)) error {
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		fn(p, fi)
		return nil
	})
	if err != nil {
		return fmt.Errorf("cache %s: %w", root, err)
	}
	return nil
}

package index

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/imgfs/imgfs/internal/atomicfile"
)

// tableDir is where tables of this format version live under a cache root.
func tableDir(cacheDir string) string {
	return filepath.Join(cacheDir, "index", "v"+strconv.Itoa(tableVersion), "sha256")
}

// tablePath returns the cache path of the table of the blob with digest d and diff_id x: tables are
// keyed by the pair that was verified.
func tablePath(cacheDir string, d, x digest.Digest) (string, error) {
	hd, err := checkSHA256(d)
	if err != nil {
		return "", err
	}
	hx, err := checkSHA256(x)
	if err != nil {
		return "", err
	}
	return filepath.Join(tableDir(cacheDir), hd+"-"+hx+".table"), nil
}

// loadTable opens a cached table and checks it against want. It returns nil (and logs why) when the
// table is missing, damaged or built from something else; such a table is simply rebuilt.
func loadTable(path string, want TableInfo, log *slog.Logger) *Table {
	t, err := OpenTable(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			log.Warn("index: rebuilding table", "path", path, "reason", err)
		}
		return nil
	}
	got := t.Info()
	if got != want {
		log.Warn("index: rebuilding stale table", "path", path, "key", got.Key, "want_key", want.Key,
			"blob", got.Blob, "want_blob", want.Blob, "stream_size", got.StreamSize, "want_stream_size", want.StreamSize,
			"blob_size", got.BlobSize, "want_blob_size", want.BlobSize)
		t.Close()
		return nil
	}
	log.Debug("index: loaded table", "path", path, "entries", t.Len())
	return t
}

// storeTable writes a finished build to a new file and maps it. With path set, the file is fsynced and
// renamed there atomically (concurrent builders of the same layer both succeed; the last rename wins);
// otherwise it is a temporary file, removed once mapped. tmpDir is where temporary files go when path
// is empty ("" for the system default).
func storeTable(b *builder, info TableInfo, path, tmpDir string) (*Table, error) {
	l := b.finish()
	dir := tmpDir
	if path != "" {
		dir = filepath.Dir(path)
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("creating table directory: %w", err)
		}
	}
	removeStaleTemps(dir)
	f, err := os.CreateTemp(dir, ".table-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("creating table file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		f.Close()
		if tmp != "" {
			os.Remove(tmp)
		}
	}()
	if err := b.write(f, l, info); err != nil {
		return nil, fmt.Errorf("writing table %s: %w", tmp, err)
	}
	t, err := openTableFile(f)
	if err != nil {
		return nil, err
	}
	if path == "" {
		return t, nil // tmp is removed by the deferred function; the mapping stays valid
	}
	if err := atomicfile.Rename(f, path); err != nil {
		t.Close()
		return nil, fmt.Errorf("storing table: %w", err)
	}
	tmp = ""
	return t, nil
}

// removeStaleTemps removes the temporary table files that crashed builders left in dir over an hour ago.
func removeStaleTemps(dir string) {
	if dir == "" {
		return
	}
	old, _ := filepath.Glob(filepath.Join(dir, ".table-*.tmp"))
	for _, p := range old {
		if fi, err := os.Stat(p); err == nil && time.Since(fi.ModTime()) > time.Hour {
			os.Remove(p)
		}
	}
}

// Progress reports how far the indexing of a layer has got.
type Progress struct {
	Entries int64 // members indexed so far
	Bytes   int64 // bytes of the blob consumed so far
	Total   int64 // size of the blob
}

// progress rate-limits a Progress callback to about ten calls a second.
type progress struct {
	fn    func(Progress)
	total int64
	bytes func() int64
	last  time.Time
}

// done reports the end of the build: all of the blob consumed.
func (p *progress) done(entries int64) {
	if p.fn != nil {
		p.fn(Progress{Entries: entries, Bytes: p.total, Total: p.total})
	}
}

func (p *progress) report(entries int64, force bool) {
	if p.fn == nil {
		return
	}
	now := time.Now()
	if !force && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	p.fn(Progress{Entries: entries, Bytes: p.bytes(), Total: p.total})
}

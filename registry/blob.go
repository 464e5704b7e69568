package registry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// ChunkSize is the unit of Range requests and of the chunk cache.
const ChunkSize = 1 << 20

// blob is a layer blob in the registry, read by Range GETs of whole chunks.
type blob struct {
	c     *client
	d     digest.Digest
	size  int64
	cache *Cache
	log   *slog.Logger

	mu       sync.Mutex
	failing  bool          // the last fetch failed (logged once until one succeeds)
	verified bool          // the whole blob was proven to have its digest: chunks may be cached
	recent   []recentChunk // the last chunks fetched, most recent last (small reads of one chunk fetch it once)
}

type recentChunk struct {
	i    int64
	data []byte
}

// maxRecent bounds the chunks each blob keeps in memory.
const maxRecent = 4

func (b *blob) fromRecent(i int64) ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.recent {
		if r.i == i {
			return r.data, true
		}
	}
	return nil, false
}

// Verified says that the blob's bytes were proven to hash to its digest (index.Open succeeded): only
// from then on are fetched chunks kept in the cache, so that a blob that does not match its digest
// leaves nothing cached as good.
func (b *blob) Verified() {
	b.mu.Lock()
	b.verified = true
	b.mu.Unlock()
}

// ReadAt reads p at off, chunk by chunk, from the cache or the registry.
func (b *blob) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("blob %s: negative offset", b.d)
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= b.size {
			return n, io.EOF
		}
		i := pos / ChunkSize
		chunk, err := b.chunk(i)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], chunk[pos-i*ChunkSize:])
	}
	return n, nil
}

// chunk returns chunk i whole (shorter at the end of the blob).
func (b *blob) chunk(i int64) ([]byte, error) {
	start := i * ChunkSize
	length := min(int64(ChunkSize), b.size-start)
	if data, ok := b.fromRecent(i); ok {
		return data, nil
	}
	if data, ok := b.cache.get(b.d, i, length); ok {
		return data, nil
	}
	var data []byte
	var status int
	err := b.c.retry(context.Background(), b.d, func(ctx context.Context) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.c.blobURL(b.d), nil)
		if err != nil {
			return 0, errPermanent{err}
		}
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", start, start+length-1))
		resp, err := b.c.rt.RoundTrip(req)
		if err != nil {
			status = 0
			return 0, err
		}
		defer resp.Body.Close()
		status = resp.StatusCode
		switch resp.StatusCode {
		case http.StatusPartialContent:
		case http.StatusOK:
			// A registry that ignores Range sends the whole blob: skip to the chunk.
			if _, err := io.CopyN(io.Discard, resp.Body, start); err != nil {
				return status, err
			}
		default:
			err := statusError(resp)
			if s := resp.Header.Get("Retry-After"); s != "" {
				if sec, perr := strconv.Atoi(s); perr == nil {
					return status, retryAfter{err: err, delay: time.Duration(sec) * time.Second}
				}
			}
			return status, err
		}
		buf := make([]byte, length)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			return status, fmt.Errorf("reading range: %w", err)
		}
		data = buf
		return status, nil
	})
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		if !b.failing {
			b.failing = true
			b.log.Error("registry: blob unavailable", "blob", b.d, "repository", b.c.repo.String(), "status", status, "error", err)
		}
		return nil, fmt.Errorf("%s@%s: chunk %d: %w", b.c.repo, b.d, i, err)
	}
	if b.failing {
		b.failing = false
		b.log.Warn("registry: blob available again", "blob", b.d, "repository", b.c.repo.String())
	}
	if len(b.recent) == maxRecent {
		b.recent = append(b.recent[:0], b.recent[1:]...)
	}
	b.recent = append(b.recent, recentChunk{i, data})
	if b.verified {
		b.cache.put(b.d, i, data)
	}
	return data, nil
}

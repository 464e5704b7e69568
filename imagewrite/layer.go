package imagewrite

import (
	"context"
	"crypto/sha256"
	"hash"
	"io"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/imgfs/imgfs/archive"
	"github.com/imgfs/imgfs/compression"
)

// writeLayer streams one new layer into st: the caller's tar is hashed (diff_id), compressed, and the
// compressed bytes hashed (digest) by the store as they are written.
func writeLayer(ctx context.Context, st store, lay layout, l Layer, comp compression.Format, prog *progress) (LayerInfo, string, error) {
	var diff hash.Hash
	if comp != compression.None {
		diff = sha256.New()
	}
	fill := func(w io.Writer) error {
		var bw *compression.Writer
		dst := w
		if comp != compression.None {
			var err error
			if bw, err = compression.NewWriter(ctx, w, comp); err != nil {
				return err
			}
			dst = bw
		}
		in := &layerInput{ctx: ctx, dst: dst, hash: diff, prog: prog}
		err := l.Write(ctx, in)
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			if bw != nil {
				bw.Abort()
			}
			return err
		}
		if bw != nil {
			if err := bw.Close(); err != nil {
				return err
			}
		}
		prog.flush()
		return nil
	}
	d, size, name, err := st.streamBlob(ctx, func(d digest.Digest) string { return lay.layerName(d, comp) }, fill)
	if err != nil {
		return LayerInfo{}, "", err
	}
	diffID := d
	if diff != nil {
		diffID = digest.NewDigest(digest.SHA256, diff)
	}
	return LayerInfo{Digest: d, DiffID: diffID, MediaType: archive.LayerMediaType(comp), Size: size}, name, nil
}

// layerInput is the writer handed to Layer.Write: it checks ctx, hashes, counts and forwards.
type layerInput struct {
	ctx  context.Context
	dst  io.Writer
	hash hash.Hash
	prog *progress
}

func (w *layerInput) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := w.dst.Write(p)
	if w.hash != nil {
		w.hash.Write(p[:n])
	}
	w.prog.add(int64(n))
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	return n, err
}

// progress reports bytes of the new layers, at most ten times a second.
type progress struct {
	fn          func(done, total int64)
	mu          sync.Mutex
	done, total int64
	last        time.Time
}

func newProgress(fn func(done, total int64), layers []Layer) *progress {
	p := &progress{fn: fn}
	for _, l := range layers {
		if l.Size <= 0 {
			p.total = -1
			break
		}
		p.total += l.Size
	}
	return p
}

func (p *progress) add(n int64) {
	if p == nil || p.fn == nil {
		return
	}
	p.mu.Lock()
	p.done += n
	now := time.Now()
	call := now.Sub(p.last) >= 100*time.Millisecond
	if call {
		p.last = now
	}
	done, total := p.done, p.total
	p.mu.Unlock()
	if call {
		p.fn(done, total)
	}
}

// flush reports the current count (at the end of a layer).
func (p *progress) flush() {
	if p == nil || p.fn == nil {
		return
	}
	p.mu.Lock()
	done, total := p.done, p.total
	p.last = time.Now()
	p.mu.Unlock()
	p.fn(done, total)
}

package index

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/imgfs/imgfs/compression"
)

// Proof is what Prove found a layer's bytes to be.
type Proof struct {
	// Digest is the sha256 of the stored blob as hashed; "" when the blob could not be read whole.
	Digest digest.Digest
	// DiffID is the sha256 of the uncompressed stream as hashed; "" when it could not be decoded
	// whole (then the error says why). For an uncompressed blob it is Digest.
	DiffID digest.Digest
	// Compression is how the blob is compressed, by its magic bytes.
	Compression compression.Format
	// Indexed says the member table was built in this pass, because the cache had no verified
	// record for these bytes; otherwise the table came from the cache and only the hashes were
	// computed.
	Indexed bool
}

// Prove is Open for an explicit verification: it hashes every byte of the blob against
// opts.Digest and the uncompressed stream against opts.DiffID even when a verified record says this
// very blob was proven before. When such a record exists the table and stream index come from the
// cache and the pass only hashes (one sequential read of the blob, decoded on another core); when
// none does, the pass that proves the claims also builds the table, as Open does. Either way the blob
// is read once, and on success the verified record is written anew, so a later Open of the same bytes
// skips the proof. The Proof says what the bytes hash to, also when the error says a claim is broken
// (what could not be computed is left empty).
func Prove(ctx context.Context, blob Blob, opts Options) (*Layer, Proof, error) {
	lo, name, err := newLayerOpen(blob, opts)
	if errors.Is(err, ErrDiffIDMismatch) {
		// An uncompressed blob whose two claims differ: one is false; say what the bytes are.
		p := Proof{Compression: compression.None}
		if d, _, herr := hashPass(ctx, blob, compression.None, func(int64) {}); herr == nil {
			p.Digest, p.DiffID = d, d
		}
		return nil, p, err
	}
	if err != nil {
		return nil, Proof{}, err
	}
	lo.proof = &Proof{Compression: lo.c}
	if l := lo.load(ctx); l != nil {
		if err := lo.rehash(ctx, l); err != nil {
			l.Close()
			return nil, *lo.proof, fmt.Errorf("proving layer %s: %w", name, err)
		}
		l.LogWarnings(lo.log, name)
		return l, *lo.proof, nil
	}
	l, err := lo.build(ctx)
	if err != nil {
		return nil, *lo.proof, fmt.Errorf("proving layer %s: %w", name, lo.explain(err))
	}
	l.LogWarnings(lo.log, name)
	return l, *lo.proof, nil
}

// explain says, for a pass that failed otherwise (a damaged stream, a broken tar), that the blob does
// not hash to its digest when the Proof shows it: that is the claim the damage breaks.
func (lo *layerOpen) explain(err error) error {
	p := lo.proof
	if p.Digest == "" || lo.d == "" || p.Digest == lo.d || errors.Is(err, ErrDigestMismatch) {
		return err
	}
	kinds := []error{ErrDigestMismatch, err}
	if lo.c == compression.None {
		kinds = append(kinds, ErrDiffIDMismatch)
	}
	return &mismatchError{fmt.Sprintf("%v: the blob is %s, expected %s (%v)", ErrDigestMismatch, p.Digest, lo.d, err), kinds}
}

// noteFailure, in Prove after the pass failed (a damaged stream, a broken tar), learns what it still
// can for the Proof: the blob's digest from the background hasher, and the diff ID by decoding the
// rest of the stream when ix still decodes. Open's own failures return at once instead.
func (lo *layerOpen) noteFailure(h *blobHasher, ix *compression.Indexer) {
	if lo.proof == nil {
		return
	}
	if ix != nil {
		buf := make([]byte, 256<<10)
		for {
			_, err := ix.Read(buf)
			if err == io.EOF {
				lo.proof.DiffID = ix.DiffID()
				break
			}
			if err != nil {
				break
			}
		}
	}
	if h != nil {
		if d, err := h.wait(func() {}); err == nil {
			lo.proof.Digest = d
			if lo.c == compression.None {
				lo.proof.DiffID = d
			}
		}
	}
}

// rehash proves the claims of a layer loaded from the cache: one sequential read of the blob, hashed
// on one goroutine and decoded (then hashed) on another. On success the verified record is rewritten.
func (lo *layerOpen) rehash(ctx context.Context, l *Layer) error {
	p := &progress{fn: lo.opts.Progress, total: lo.blob.Size}
	var read int64
	p.bytes = func() int64 { return read }
	d, x, err := hashPass(ctx, lo.blob, lo.c, func(n int64) {
		read = n
		p.report(int64(l.Len()), false)
	})
	lo.proof.Digest, lo.proof.DiffID = d, x
	if err != nil {
		return err
	}
	var errs []error
	if x != lo.x {
		errs = append(errs, fmt.Errorf("%w: uncompressed data is %s, expected %s", ErrDiffIDMismatch, x, lo.x))
	}
	if d != lo.d && lo.c != compression.None {
		errs = append(errs, fmt.Errorf("%w: the blob is %s, expected %s", ErrDigestMismatch, d, lo.d))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if now, ok := sourceIdentity(lo.blob); !ok || now != lo.source {
		return ErrBlobChanged
	}
	p.done(int64(l.Len()))
	rec := &verifiedRecord{Digest: lo.d, DiffID: lo.x, Compression: lo.c.String(), Source: lo.source,
		BlobSize: lo.blob.Size, StreamSize: l.stream.Size(), TableCRC: l.headerCRC()}
	if lo.c != compression.None {
		rec.StreamCRC = l.stream.IndexCRC()
	}
	if err := writeRecord(lo.record, rec); err != nil {
		lo.log.Warn("index: layer verified but not remembered", "layer", lo.x, "reason", err)
	}
	return nil
}

// hashChunk is the size of the reads of a hash pass.
const hashChunk = 1 << 20

// hashPass reads blob once, in order, and returns the sha256 of its bytes and of its uncompressed
// stream (the same for an uncompressed blob). Each chunk read is hashed on one goroutine while another
// decodes it (reading the very buffer, no copy through a pipe) and a third hashes the output, so the pass
// runs at the speed of its slowest stage. tick is called with the bytes read so far, at most about ten
// times a second. On a decoding error d is still returned when the blob itself could be read.
func hashPass(ctx context.Context, blob Blob, c compression.Format, tick func(int64)) (d, x digest.Digest, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	const nbuf = 8
	free := make(chan *chunk, nbuf)
	for range nbuf {
		free <- &chunk{b: make([]byte, hashChunk), free: free}
	}
	blobSum := newHashStage(nbuf)
	var (
		dec   *chunkStream
		xDone chan struct{}
		xErr  error
	)
	if c != compression.None {
		dec = &chunkStream{in: make(chan *chunk, nbuf)}
		xDone = make(chan struct{})
		go func() {
			defer close(xDone)
			x, xErr = decodeAndHash(ctx, dec, c)
			if trailing := dec.drain(); trailing && xErr == nil {
				xErr = errors.New("data after the end of the compressed stream")
			}
		}()
	}
	last := time.Now()
	readErr := readChunks(ctx, blob, free, func(ch *chunk, off int64) {
		if dec != nil {
			ch.refs.Store(2)
			dec.in <- ch
		} else {
			ch.refs.Store(1)
		}
		blobSum.in <- ch
		if now := time.Now(); now.Sub(last) >= 100*time.Millisecond {
			last = now
			tick(off)
		}
	})
	if readErr == nil {
		tick(blob.Size)
	}
	if dec != nil {
		close(dec.in)
		<-xDone
	}
	sum := blobSum.finish()
	if readErr != nil {
		return "", "", readErr
	}
	d = digest.NewDigest(digest.SHA256, sum)
	if c == compression.None {
		return d, d, nil
	}
	if xErr != nil {
		return d, "", fmt.Errorf("decoding %s stream: %w", c, xErr)
	}
	return d, x, nil
}

// chunk is a buffer of a hash pass, shared by the stages that read it: the last one to release it
// hands it back to free.
type chunk struct {
	b    []byte
	n    int
	refs atomic.Int32
	free chan *chunk
}

func (c *chunk) release() {
	if c.refs.Add(-1) == 0 {
		c.free <- c
	}
}

// chunkStream reads the chunks sent to in, in order, as one stream.
type chunkStream struct {
	in  chan *chunk
	cur *chunk
	buf []byte
}

func (r *chunkStream) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.cur != nil {
			r.cur.release()
			r.cur = nil
		}
		c, ok := <-r.in
		if !ok {
			return 0, io.EOF
		}
		r.cur, r.buf = c, c.b[:c.n]
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// drain releases what the decoder left unread and says whether any of it was data.
func (r *chunkStream) drain() (trailing bool) {
	trailing = len(r.buf) > 0
	if r.cur != nil {
		r.cur.release()
		r.cur, r.buf = nil, nil
	}
	for c := range r.in {
		trailing = trailing || c.n > 0
		c.release()
	}
	return trailing
}

// hashStage hashes the chunks sent to in on its own goroutine, releasing each.
type hashStage struct {
	in   chan *chunk
	done chan struct{}
	h    hash.Hash
}

func newHashStage(n int) *hashStage {
	s := &hashStage{in: make(chan *chunk, n), done: make(chan struct{}), h: sha256.New()}
	go func() {
		defer close(s.done)
		for c := range s.in {
			s.h.Write(c.b[:c.n])
			c.release()
		}
	}()
	return s
}

// finish waits for the chunks sent so far and returns the hash.
func (s *hashStage) finish() hash.Hash {
	close(s.in)
	<-s.done
	return s.h
}

// decodeAndHash decodes the stream r (compressed with c) to its end and returns the sha256 of the
// output, hashed on a goroutine of its own.
func decodeAndHash(ctx context.Context, r io.Reader, c compression.Format) (digest.Digest, error) {
	zr, got, err := compression.NewReader(bufio.NewReaderSize(r, 256<<10))
	if err != nil {
		return "", err
	}
	defer zr.Close()
	if got != c {
		return "", fmt.Errorf("stream is %s, expected %s", got, c)
	}
	const nbuf = 4
	free := make(chan *chunk, nbuf)
	for range nbuf {
		free <- &chunk{b: make([]byte, hashChunk), free: free}
	}
	out := newHashStage(nbuf)
	for {
		if err := ctx.Err(); err != nil {
			out.finish()
			return "", err
		}
		ch := <-free
		n, err := io.ReadFull(zr, ch.b)
		ch.n = n
		ch.refs.Store(1)
		out.in <- ch
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			out.finish()
			return "", err
		}
	}
	return digest.NewDigest(digest.SHA256, out.finish()), nil
}

package compression

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Block sizes of the parallel compressors. They fix where the input is cut, so they are part of the
// output's identity: changing one changes every digest.
const (
	gzipBlock = 1 << 20
	zstdBlock = 4 << 20
)

// encoder compresses one block into a self-contained gzip member or zstd frame, appending to dst. It
// must be safe for concurrent use.
type encoder interface {
	encode(dst, src []byte) []byte
}

// gzipEncoder writes each block as a gzip member with an empty header (no name, mtime 0).
type gzipEncoder struct {
	level int
	pool  sync.Pool // *gzip.Writer
}

func newGzipEncoder(level int) *gzipEncoder { return &gzipEncoder{level: level} }

func (e *gzipEncoder) encode(dst, src []byte) []byte {
	buf := bytes.NewBuffer(dst)
	zw, _ := e.pool.Get().(*gzip.Writer)
	if zw == nil {
		var err error
		if zw, err = gzip.NewWriterLevel(buf, e.level); err != nil {
			panic(err) // the level is a constant of this package
		}
	} else {
		zw.Reset(buf)
	}
	// Writes to a bytes.Buffer cannot fail.
	zw.Write(src)
	zw.Close()
	e.pool.Put(zw)
	return buf.Bytes()
}

// zstdEncoder writes each block as a zstd frame (with its content size and checksum).
type zstdEncoder struct{ enc *zstd.Encoder }

func newZstdEncoder(workers int) *zstdEncoder {
	// Entropy-coding every literal block matters for small frames: without it, 1 MiB frames of hex
	// text come out 30% bigger (the encoder skips literals it guesses incompressible).
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(workers), zstd.WithZeroFrames(true),
		zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderCRC(true), zstd.WithAllLitEntropyCompression(true))
	if err != nil {
		panic(err) // the options are constants of this package
	}
	return &zstdEncoder{enc: enc}
}

func (e *zstdEncoder) encode(dst, src []byte) []byte { return e.enc.EncodeAll(src, dst) }

// newEncoder returns the block encoder and block size for a compression, nil for none.
func newEncoder(c Format, workers int) (encoder, int) {
	switch c {
	case Gzip:
		return newGzipEncoder(gzip.DefaultCompression), gzipBlock
	case Zstd:
		return newZstdEncoder(workers), zstdBlock
	}
	return nil, 0
}

// blockWriter compresses its input in fixed-size blocks on several goroutines and writes the compressed
// blocks to dst in input order. At most about 3×workers blocks are in memory at once.
type blockWriter struct {
	ctx   context.Context
	dst   writer
	enc   encoder
	size  int
	cur   *[]byte
	any   bool // some block was submitted
	jobs  chan *job
	sem   chan struct{}
	done  chan struct{}
	bufs  sync.Pool // *[]byte of cap size
	outs  sync.Pool // *[]byte
	mu    sync.Mutex
	err   error
	ended bool
}

// writer is what blockWriter writes to.
type writer interface {
	Write(p []byte) (int, error)
}

type job struct {
	in, out *[]byte
	ready   chan struct{}
}

func newBlockWriter(ctx context.Context, dst writer, enc encoder, size, workers int) *blockWriter {
	if workers < 1 {
		workers = 1
	}
	w := &blockWriter{
		ctx: ctx, dst: dst, enc: enc, size: size,
		jobs: make(chan *job, 2*workers), sem: make(chan struct{}, workers), done: make(chan struct{}),
	}
	go w.drain()
	return w
}

// defaultWorkers is the number of blocks compressed at once.
func defaultWorkers() int { return runtime.GOMAXPROCS(0) }

func (w *blockWriter) getBuf() *[]byte {
	if b, ok := w.bufs.Get().(*[]byte); ok {
		*b = (*b)[:0]
		return b
	}
	b := make([]byte, 0, w.size)
	return &b
}

func (w *blockWriter) failure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *blockWriter) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

// Write buffers p and submits every full block.
func (w *blockWriter) Write(p []byte) (int, error) {
	if err := w.failure(); err != nil {
		return 0, err
	}
	n := 0
	for len(p) > 0 {
		if w.cur == nil {
			w.cur = w.getBuf()
		}
		k := min(len(p), w.size-len(*w.cur))
		*w.cur = append(*w.cur, p[:k]...)
		p, n = p[k:], n+k
		if len(*w.cur) == w.size {
			if err := w.submit(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// submit hands the current block to a worker and queues it for output.
func (w *blockWriter) submit() error {
	j := &job{in: w.cur, ready: make(chan struct{})}
	w.cur, w.any = nil, true
	select {
	case w.jobs <- j:
	case <-w.ctx.Done():
		w.fail(w.ctx.Err())
		return w.ctx.Err()
	}
	go func() {
		w.sem <- struct{}{}
		out, _ := w.outs.Get().(*[]byte)
		if out == nil {
			b := make([]byte, 0, w.size/2)
			out = &b
		}
		*out = w.enc.encode((*out)[:0], *j.in)
		j.out = out
		<-w.sem
		close(j.ready)
	}()
	return nil
}

// drain writes finished blocks in order; after an error it keeps receiving so that nothing blocks.
func (w *blockWriter) drain() {
	defer close(w.done)
	for j := range w.jobs {
		<-j.ready
		if w.failure() == nil {
			if _, err := w.dst.Write(*j.out); err != nil {
				w.fail(err)
			}
		}
		w.bufs.Put(j.in)
		w.outs.Put(j.out)
	}
}

// Close compresses what is left (an empty input still gives one empty member or frame, so the output is
// a valid stream), waits for every block to be written and returns the first error.
func (w *blockWriter) Close() error {
	if w.ended {
		return w.failure()
	}
	if w.failure() == nil && (w.cur != nil && len(*w.cur) > 0 || !w.any) {
		if w.cur == nil {
			w.cur = w.getBuf()
		}
		w.submit()
	}
	w.end()
	return w.failure()
}

// abort stops the writer after an error elsewhere: queued blocks are finished but not written.
func (w *blockWriter) abort() {
	w.fail(context.Canceled)
	w.end()
}

func (w *blockWriter) end() {
	if !w.ended {
		w.ended = true
		close(w.jobs)
		<-w.done
	}
}

// Writer compresses a stream with all cores, in the deterministic block format of new layers
// (independent gzip members of 1 MiB, or zstd frames of 4 MiB): the same input gives the same bytes on
// every machine. Close flushes it; Abort drops what is queued after an error elsewhere. It does not
// close the underlying writer.
type Writer struct{ bw *blockWriter }

// NewWriter returns a Writer compressing to w with Gzip or Zstd; None is an error (write to w directly).
func NewWriter(ctx context.Context, w io.Writer, c Format) (*Writer, error) {
	enc, size := newEncoder(c, defaultWorkers())
	if enc == nil {
		return nil, fmt.Errorf("%w: no writer for %v", ErrUnsupported, c)
	}
	return &Writer{bw: newBlockWriter(ctx, w, enc, size, defaultWorkers())}, nil
}

// Write compresses p (asynchronously: errors of the underlying writer show in later calls or Close).
func (c *Writer) Write(p []byte) (int, error) { return c.bw.Write(p) }

// Close compresses what is buffered and waits until everything is written.
func (c *Writer) Close() error { return c.bw.Close() }

// Abort stops compressing after a failure elsewhere: queued blocks are finished but not written.
func (c *Writer) Abort() { c.bw.abort() }

package evidence

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"path"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

// HashdeepHeader is the first line of a hashdeep file, and HashdeepColumns its second as imgfs writes it.
const (
	HashdeepHeader  = "%%%% HASHDEEP-1.0"
	HashdeepColumns = "%%%% size,md5,sha256,filename"
)

// hashdeepMaxLine is the longest line hashdeep reads whole, its newline included: it reads its known
// files with fgets into a buffer of MAX_STRING_LENGTH (2048) bytes, so a longer line is cut in two and
// its second half read as a record of its own.
const hashdeepMaxLine = 2047

// Invocation is what a hashdeep header records about the program that wrote the file: the
// "## Invoked from:" directory and the "## # command line" (the prompt "#" for root, "$" otherwise).
type Invocation struct {
	Dir  string
	Args []string
	Root bool
}

// HashOptions configure WriteHashes and WriteLayerHashes.
type HashOptions struct {
	// Root is written before every path, so the names are those the files have under a mount point:
	// "/mnt/app" gives "/mnt/app/etc/passwd", which `hashdeep -a -k FILE -r /mnt/app` matches (hashdeep
	// makes every name absolute and clean unless -l is given); "." (the default, "") gives
	// "./etc/passwd", which `hashdeep -l -a -k FILE -r .` run in the mount point matches (with -l it
	// keeps the names as it walks them, "ROOT/name"). An absolute Root is cleaned as hashdeep cleans its
	// names; a relative one is kept as typed, less trailing slashes.
	Root string
	// Invocation fills the "## Invoked from:" and command lines of the header.
	Invocation Invocation
	// Comments are more "## " lines written after the header (what the list is of: archive, image,
	// layer). hashdeep ignores them; each is cut to a length hashdeep reads whole.
	Comments []string
	// Workers is the number of files hashed at once; 0 means one per core.
	Workers int
	// Logger receives a warning for every file that a hashdeep line cannot name; nil discards them.
	Logger *slog.Logger
	// Progress, when set, is called at most about ten times a second, and once at the end.
	Progress func(HashStats)
}

// HashStats say what a hash list holds.
type HashStats struct {
	// Files is the number of regular files hashed, Bytes their data.
	Files, Bytes int64
	// Skipped counts the files whose names a hashdeep line cannot hold (a newline or carriage return in
	// the name, or a line longer than hashdeep reads): they are hashed and written as "## skipped"
	// comments, so an audit over a mount reports them as new files.
	Skipped int64
}

// hashJob is one file to hash, and its result once done is closed.
type hashJob struct {
	name string // the name as written, Root included
	size int64
	open func() (io.ReaderAt, func() error, error)

	done   chan struct{}
	md5    [md5.Size]byte
	sha256 [sha256.Size]byte
	err    error
}

// WriteHashes writes a hashdeep file of the regular files of view v, read from the members' bytes:
// size, md5, sha256 and name, one line per name (a file with several hard-linked names is listed under
// each, as hashdeep lists it), in the view's depth-first order, directories' entries sorted bytewise.
// Files are hashed several at a time (opts.Workers), each in one pass for both hashes; the output
// order does not depend on it. Directories, symlinks, devices, FIFOs and sockets are not listed, so the
// list audits with `hashdeep -o f` (regular files only, symlinks not followed; see the README), or
// with plain `hashdeep -a` over an --evidence mount (its nosymfollow keeps hashdeep from following a
// symlink out of the image).
func WriteHashes(ctx context.Context, v *overlay.View, w io.Writer, opts HashOptions) (HashStats, error) {
	return writeHashes(ctx, w, opts, func(emit func(*hashJob) error) error {
		return walkView(ctx, v, func(p string, de overlay.DirEntry) error {
			if de.Type != index.TypeRegular {
				return nil
			}
			a, err := v.Attr(de.Node)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			n := de.Node
			return emit(&hashJob{name: p, size: a.Size, open: func() (io.ReaderAt, func() error, error) {
				f, err := v.Open(n)
				if err != nil {
					return nil, nil, err
				}
				return f, f.Close, nil
			}})
		})
	})
}

// WriteLayerHashes writes a hashdeep file of one layer's regular members as its tar holds them:
// whiteout markers (empty files named .wh.*) included, a hard link under its own name with its target's
// data (a hard link to a file of another layer cannot be hashed from this one: it is left out with a
// warning). Names are the members' normalised paths, under opts.Root.
func WriteLayerHashes(ctx context.Context, l overlay.Layer, w io.Writer, opts HashOptions) (HashStats, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return writeHashes(ctx, w, opts, func(emit func(*hashJob) error) error {
		return walkLayer(ctx, l, func(p string, id index.ID, e index.Entry) error {
			if e.Type == index.TypeHardlink {
				if e.Link == index.NoID || l.Entry(e.Link).Type != index.TypeRegular {
					log.Warn("hashes: hard link whose target is not a file of this layer; not listed",
						"path", p, "target", l.LinkName(id))
					return nil
				}
				id, e = e.Link, l.Entry(e.Link)
			}
			if e.Type != index.TypeRegular {
				return nil
			}
			return emit(&hashJob{name: p, size: e.Size, open: func() (io.ReaderAt, func() error, error) {
				return memberReader{l, id}, func() error { return nil }, nil
			}})
		})
	})
}

// memberReader reads one member of a layer.
type memberReader struct {
	l  overlay.Layer
	id index.ID
}

func (m memberReader) ReadAt(p []byte, off int64) (int, error) { return m.l.ReadAt(m.id, p, off) }

// walkView calls fn for every entry of v below the root, depth first, with its name under no root
// ("etc/passwd").
func walkView(ctx context.Context, v *overlay.View, fn func(p string, de overlay.DirEntry) error) error {
	type level struct {
		d      *overlay.Dir
		next   int
		prefix string
	}
	d, err := v.ReadDir(overlay.Root)
	if err != nil {
		return fmt.Errorf("reading the root directory: %w", err)
	}
	stack := []level{{d: d}}
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if top.next >= top.d.Len() {
			stack = stack[:len(stack)-1]
			continue
		}
		de := top.d.Entry(top.next)
		top.next++
		if err := ctx.Err(); err != nil {
			return err
		}
		p := top.prefix + de.Name
		if err := fn(p, de); err != nil {
			return err
		}
		if de.Type == index.TypeDir {
			sub, err := v.ReadDir(de.Node)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			stack = append(stack, level{d: sub, prefix: p + "/"})
		}
	}
	return nil
}

// walkLayer calls fn for every entry of layer l below its root, depth first, children in the table's
// order (sorted bytewise), with its path ("etc/passwd").
func walkLayer(ctx context.Context, l overlay.Layer, fn func(p string, id index.ID, e index.Entry) error) error {
	type level struct {
		next, end index.ID
		prefix    string
	}
	first, n := l.Children(0)
	stack := []level{{next: first, end: first + index.ID(n)}}
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if top.next >= top.end {
			stack = stack[:len(stack)-1]
			continue
		}
		id := top.next
		top.next++
		if err := ctx.Err(); err != nil {
			return err
		}
		e := l.Entry(id)
		p := top.prefix + l.Name(id)
		if err := fn(p, id, e); err != nil {
			return err
		}
		if e.Type == index.TypeDir {
			first, n := l.Children(id)
			if n > 0 {
				stack = append(stack, level{next: first, end: first + index.ID(n), prefix: p + "/"})
			}
		}
	}
	return nil
}

// rootPrefix returns what goes before every relative path: root cleaned as the README says, with a
// trailing slash.
func rootPrefix(root string) string {
	switch {
	case root == "":
		return "./"
	case strings.HasPrefix(root, "/"):
		root = path.Clean(root)
		if root == "/" {
			return "/"
		}
		return root + "/"
	}
	root = strings.TrimRight(root, "/")
	return root + "/"
}

// writeHashes writes the header, then the line of every job walk emits, in order, while a pool of
// workers hashes ahead of the writer (at most a window of jobs in memory).
func writeHashes(ctx context.Context, w io.Writer, opts HashOptions, walk func(emit func(*hashJob) error) error) (HashStats, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	prefix := rootPrefix(opts.Root)
	bw := bufio.NewWriterSize(w, 1<<20)
	writeHeader(bw, opts.Invocation, opts.Comments)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan *hashJob)
	order := make(chan *hashJob, 64*workers)
	var wg sync.WaitGroup
	var bytesDone atomic.Int64
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := newHasher()
			for j := range work {
				if ctx.Err() == nil {
					j.err = h.hash(ctx, j, &bytesDone)
				} else {
					j.err = ctx.Err()
				}
				close(j.done)
			}
		}()
	}
	walkErr := make(chan error, 1)
	go func() {
		defer close(order)
		defer close(work)
		walkErr <- walk(func(j *hashJob) error {
			j.name = prefix + j.name
			j.done = make(chan struct{})
			select {
			case order <- j:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case work <- j:
			case <-ctx.Done():
				close(j.done) // never hashed; the writer has stopped or stops at it
				return ctx.Err()
			}
			return nil
		})
	}()

	var st HashStats
	var firstErr error
	last := time.Now()
	report := func(force bool) {
		if opts.Progress == nil {
			return
		}
		if now := time.Now(); force || now.Sub(last) >= 100*time.Millisecond {
			last = now
			s := st
			s.Bytes = bytesDone.Load()
			opts.Progress(s)
		}
	}
	for j := range order {
		<-j.done
		if firstErr != nil {
			continue
		}
		if j.err == nil && ctx.Err() != nil {
			j.err = ctx.Err()
		}
		if j.err != nil {
			firstErr = fmt.Errorf("%s: %w", j.name, j.err)
			cancel()
			continue
		}
		st.Files++
		line := strconv.FormatInt(j.size, 10) + "," + hex.EncodeToString(j.md5[:]) + "," + hex.EncodeToString(j.sha256[:]) + ","
		if why := unlistable(line, j.name); why != "" {
			st.Skipped++
			log.Warn("hashes: a hashdeep line cannot name this file; written as a comment, an audit will report it as new",
				"path", j.name, "reason", why)
			bw.WriteString(commentLine("skipped (" + why + "): " + line + strconv.Quote(j.name)))
		} else {
			bw.WriteString(line)
			bw.WriteString(j.name)
			bw.WriteByte('\n')
		}
		report(false)
	}
	wg.Wait()
	err := <-walkErr
	if firstErr == nil && err != nil {
		firstErr = err
	}
	if firstErr == nil {
		firstErr = bw.Flush()
	}
	st.Bytes = bytesDone.Load()
	report(true)
	if firstErr != nil {
		return st, fmt.Errorf("hashing: %w", firstErr)
	}
	return st, nil
}

// unlistable says why a record line cannot name file name, or "" when it can: hashdeep reads its known
// files line by line with no escapes (a name holding a newline or a carriage return breaks its line),
// and at most hashdeepMaxLine bytes of a line.
func unlistable(line, name string) string {
	switch {
	case strings.ContainsAny(name, "\n"):
		return "newline in the name"
	case strings.ContainsAny(name, "\r"):
		return "carriage return in the name"
	case len(line)+len(name)+1 > hashdeepMaxLine:
		return "line longer than hashdeep reads"
	}
	return ""
}

// commentLine returns "## " s as one line hashdeep reads whole (cut short with "..." when too long).
func commentLine(s string) string {
	s = strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(s)
	const max = hashdeepMaxLine - len("## ") - 1
	if len(s) > max {
		s = s[:max-3] + "..."
	}
	return "## " + s + "\n"
}

// writeHeader writes the hashdeep header as hashdeep 4.4 writes it (main.cpp, make_banner): the two
// "%%%%" lines, "## Invoked from: DIR", "## # ARGS" (arguments moved to a new "## " line when a line
// would grow past what hashdeep reads), and an empty "## " line; then the comments.
func writeHeader(w *bufio.Writer, inv Invocation, comments []string) {
	w.WriteString(HashdeepHeader + "\n" + HashdeepColumns + "\n")
	w.WriteString(commentLine("Invoked from: " + inv.Dir))
	prompt := "$"
	if inv.Root {
		prompt = "#"
	}
	w.WriteString("## " + prompt)
	written := 8 // hashdeep's count: "## ", the prompt and the space before the first argument
	for _, a := range inv.Args {
		a = strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(a)
		if len(a) > hashdeepMaxLine-64 {
			a = a[:hashdeepMaxLine-64] + "..."
		}
		w.WriteByte(' ')
		written++
		if len(a)+written+32 > hashdeepMaxLine+1 {
			w.WriteString("\n## ")
			written = 3
		}
		w.WriteString(a)
		written += len(a)
	}
	w.WriteString("\n## \n")
	for _, c := range comments {
		w.WriteString(commentLine(c))
	}
}

// bigFile is the size from which a file's md5 and sha256 are computed by two goroutines, each over the
// same chunks, while a third reads ahead.
const (
	bigFile   = 8 << 20
	chunkSize = 1 << 20
)

// hasher is one worker's state: its buffer and hashes, reused from file to file.
type hasher struct {
	buf []byte
	md5 hash.Hash
	sha hash.Hash
}

func newHasher() *hasher {
	return &hasher{buf: make([]byte, chunkSize), md5: md5.New(), sha: sha256.New()}
}

// hash hashes j's data into j.md5 and j.sha256.
func (h *hasher) hash(ctx context.Context, j *hashJob, done *atomic.Int64) error {
	r, closeFn, err := j.open()
	if err != nil {
		return err
	}
	h.md5.Reset()
	h.sha.Reset()
	if j.size >= bigFile {
		err = hashParallel(ctx, r, j.size, done, h.md5, h.sha)
	} else {
		err = hashSerial(ctx, r, j.size, h.buf, done, h.md5, h.sha)
	}
	if cerr := closeFn(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	h.md5.Sum(j.md5[:0])
	h.sha.Sum(j.sha256[:0])
	return nil
}

// errShort means a file's data ended before the size its entry gives.
var errShort = errors.New("data shorter than the file's size")

// readChunk reads len(p) bytes at off, the end of the file's data excepted.
func readChunk(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		return errShort
	}
	return err
}

// hashSerial feeds size bytes of r to every hash, chunk by chunk, in one goroutine.
func hashSerial(ctx context.Context, r io.ReaderAt, size int64, buf []byte, done *atomic.Int64, hs ...hash.Hash) error {
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := buf[:min(int64(len(buf)), size-off)]
		if err := readChunk(r, p, off); err != nil {
			return err
		}
		for _, h := range hs {
			h.Write(p)
		}
		off += int64(len(p))
		if done != nil {
			done.Add(int64(len(p)))
		}
	}
	return nil
}

// hashParallel is hashSerial for a big file: the reader (which may be inflating a compressed layer)
// and each hash run in goroutines of their own over a ring of chunks, so one big file uses as many
// cores as the three stages can.
func hashParallel(ctx context.Context, r io.ReaderAt, size int64, done *atomic.Int64, hs ...hash.Hash) error {
	type piece struct {
		p    []byte
		left atomic.Int32
	}
	const ring = 4
	free := make(chan *piece, ring)
	for range ring {
		free <- &piece{p: make([]byte, chunkSize)}
	}
	feeds := make([]chan *piece, len(hs))
	var wg sync.WaitGroup
	for i, h := range hs {
		feeds[i] = make(chan *piece, ring)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pc := range feeds[i] {
				h.Write(pc.p)
				if pc.left.Add(-1) == 0 {
					free <- pc
				}
			}
		}()
	}
	var err error
	for off := int64(0); off < size; {
		if err = ctx.Err(); err != nil {
			break
		}
		pc := <-free
		pc.p = pc.p[:min(int64(cap(pc.p)), size-off)]
		if err = readChunk(r, pc.p, off); err != nil {
			break
		}
		pc.left.Store(int32(len(feeds)))
		for _, f := range feeds {
			f <- pc
		}
		off += int64(len(pc.p))
		if done != nil {
			done.Add(int64(len(pc.p)))
		}
	}
	for _, f := range feeds {
		close(f)
	}
	wg.Wait()
	return err
}

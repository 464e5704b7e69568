package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sort"
	"sync"
	"syscall"

	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli/v2"

	"github.com/imgfs/imgfs/archive"
	"github.com/imgfs/imgfs/cache"
	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
	"github.com/imgfs/imgfs/registry"
)

// opened is an archive with one image selected and its layers indexed.
type opened struct {
	arc    *archive.Archive   // nil for a registry image
	more   []*archive.Archive // the other sources of a stack (openStack); arc is its top
	name   string             // the archive path or the registry reference, for messages
	img    *archive.Image
	layers []*index.Layer
	// noVerify serves a layer whose digest or diff_id does not match (mount --no-verify); unverified
	// names each such layer.
	noVerify   bool
	unverified []string
	// leases hold the cache keys of the layers (and of a compressed archive's stream) while they are
	// in use, so that no prune removes them.
	mu     sync.Mutex
	leases []*cache.Lease
}

// hold takes the lease of the cache key of (d, x), when there is one, for as long as o is open. The
// returned function notes the use by archive path once the layer was opened from or into the cache.
func (o *opened) hold(dir string, d, x digest.Digest, path string, log *slog.Logger) (used func()) {
	k, ok := cache.Key(d, x)
	if !ok {
		return func() {}
	}
	l, err := cache.Lock(dir, k)
	if err != nil {
		log.Warn("cache: no lease on a key (a concurrent prune may remove it)", "key", k, "err", err)
		return func() {}
	}
	o.mu.Lock()
	o.leases = append(o.leases, l)
	o.mu.Unlock()
	return func() {
		if err := cache.RecordUse(dir, k, path); err != nil {
			log.Warn("cache: use not recorded", "key", k, "err", err)
		}
	}
}

func (o *opened) Close() error {
	var first error
	for _, l := range o.layers {
		if l == nil {
			continue
		}
		if err := l.Close(); err != nil && first == nil {
			first = err
		}
	}
	for _, a := range append([]*archive.Archive{o.arc}, o.more...) {
		if a == nil {
			continue
		}
		if err := a.Close(); err != nil && first == nil {
			first = err
		}
	}
	for _, l := range o.leases {
		l.Close()
	}
	return first
}

// openImage opens the archive, selects the image the flags name and indexes its layers (from the cache
// when it can), several layers at a time.
func openImage(ctx context.Context, c *cli.Context, path string, log *slog.Logger) (*opened, error) {
	return openImageIndexed(ctx, c, path, log, true)
}

// openImageIndexed is openImage; without indexed the layers are left unopened (o.layers stays empty).
func openImageIndexed(ctx context.Context, c *cli.Context, path string, log *slog.Logger, indexed bool) (*opened, error) {
	return openImageRef(ctx, c, path, c.String("image"), log, indexed)
}

// openImageRef is openImageIndexed with the image named by ref rather than by --image.
func openImageRef(ctx context.Context, c *cli.Context, path, ref string, log *slog.Logger, indexed bool) (*opened, error) {
	dir := cacheDir(c)
	quiet := c.Bool("quiet")
	if ref, ok := registry.IsReference(path); ok {
		o, err := openRemote(ctx, c, ref, log)
		if err != nil || !indexed {
			return o, err
		}
		o.layers = make([]*index.Layer, len(o.img.Layers))
		if err := o.indexLayers(ctx, o.name, dir, quiet, log); err != nil {
			o.Close()
			return nil, err
		}
		return o, nil
	}
	platform, err := parsePlatform(c.String("platform"))
	if err != nil {
		return nil, err
	}
	ap := newProgress(quiet, "reading archive", 1)
	o := &opened{noVerify: c.Bool("no-verify")}
	arc, err := archive.Open(ctx, path, archive.Options{CacheDir: dir, Logger: log, Progress: ap.streamSlot(0), Hold: outerHold(dir, path, log)})
	ap.done()
	if err != nil {
		return nil, err
	}
	o.arc = arc
	img, err := arc.Image(ctx, ref, platform)
	if err != nil {
		arc.Close()
		return nil, err
	}
	o.img = img
	o.name = arc.Path()
	if !indexed {
		return o, nil
	}
	o.layers = make([]*index.Layer, len(img.Layers))
	if err := o.indexLayers(ctx, path, dir, quiet, log); err != nil {
		o.Close()
		return nil, err
	}
	return o, nil
}

func (o *opened) indexLayers(ctx context.Context, path, dir string, quiet bool, log *slog.Logger) error {
	n := len(o.img.Layers)
	pr := newProgress(quiet, fmt.Sprintf("indexing %d layer(s)", n), n)
	defer pr.done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := min(runtime.NumCPU(), n)
	jobs := make(chan int)
	errs := make([]error, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				l := o.img.Layers[i]
				blob, err := l.Blob()
				if err == nil {
					used := o.hold(dir, l.Digest, l.DiffID, path, log)
					o.layers[i], err = index.Open(ctx, blob, index.Options{
						CacheDir: dir, DiffID: l.DiffID, Digest: l.Digest, Logger: log, Progress: pr.slot(i),
					})
					if err == nil {
						used()
						if v, ok := blob.R.(interface{ Verified() }); ok {
							v.Verified() // a registry blob: its chunks may be cached from now on
						}
					}
					if o.noVerify && (errors.Is(err, index.ErrDigestMismatch) || errors.Is(err, index.ErrDiffIDMismatch)) {
						// Unkeyed: indexed without claims, nothing of it is cached.
						what := fmt.Sprintf("layer %d (%s, %s): %v", i+1, l.Digest, l.Source, err)
						log.Warn("--no-verify: serving a layer UNVERIFIED", "layer", what)
						o.layers[i], err = index.Open(ctx, blob, index.Options{CacheDir: dir, Logger: log, Progress: pr.slot(i)})
						mu.Lock()
						o.unverified = append(o.unverified, what)
						mu.Unlock()
					}
				}
				if err != nil {
					errs[i] = fmt.Errorf("%s: layer %d (%s at %s): %w", path, i+1, l.Digest, l.Source, err)
					cancel()
				}
			}
		}()
	}
	for _, i := range indexOrder(o.img.Layers) {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	sortStrings(o.unverified)
	// The first real failure, not the cancellations it caused in the other workers.
	var canceled error
	for _, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, context.Canceled):
			if canceled == nil {
				canceled = err
			}
		default:
			return err
		}
	}
	if canceled != nil {
		return canceled
	}
	return ctx.Err()
}

// indexOrder is the order in which layers are handed to the indexing workers: largest blob first (ties
// bottom first), so that the longest job never starts last while the other cores sit idle (in image
// order, a big top layer began only when a worker became free).
func indexOrder(layers []archive.Layer) []int {
	order := make([]int, len(layers))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return layers[order[a]].Size > layers[order[b]].Size })
	return order
}

// parsePlatform parses --platform; "" means the archive package's default (the host).
func parsePlatform(s string) (*ispec.Platform, error) {
	if s == "" {
		return nil, nil
	}
	p, err := archive.ParsePlatform(s)
	if err != nil {
		return nil, fmt.Errorf("--platform: %w", err)
	}
	return &p, nil
}

// baseID identifies the image an upper directory was made over: the OCI chain ID of its layers'
// diff IDs (the same ID whatever archive format the image comes in).
func (o *opened) baseID() string {
	if len(o.img.Layers) == 0 {
		return "no layers" // every image without layers has the same, empty base
	}
	var chain digest.Digest
	for i, l := range o.img.Layers {
		if i == 0 {
			chain = l.DiffID
			continue
		}
		chain = digest.FromString(string(chain) + " " + string(l.DiffID))
	}
	return string(chain)
}

// layers returns the indexed layers as overlay sees them.
func (o *opened) overlayLayers() []overlay.Layer {
	out := make([]overlay.Layer, len(o.layers))
	for i, l := range o.layers {
		out[i] = l
	}
	return out
}

// view builds the union of the image's layers, with the upper directory on top when dir is set. The
// returned function closes what the view holds besides the layers.
func (o *opened) view(dir string, log *slog.Logger) (*overlay.View, func(), error) {
	return o.viewOf(dir, false, log)
}

// viewOf is view; with readOnly the upper directory is only read (it must be one a mount made).
func (o *opened) viewOf(dir string, readOnly bool, log *slog.Logger) (*overlay.View, func(), error) {
	opts := overlay.Options{Logger: log}
	closeUpper := func() {}
	if dir != "" {
		up, err := overlay.OpenUpper(overlay.UpperOptions{Dir: dir, Base: o.baseID(), Logger: log, ReadOnly: readOnly})
		if err != nil {
			if errors.Is(err, syscall.ENOTCONN) {
				return nil, nil, deadMountError(dir, err)
			}
			if readOnly {
				return nil, nil, err
			}
			return nil, nil, fmt.Errorf("upper directory %s: %w", dir, err)
		}
		opts.Upper = up
		closeUpper = func() { up.Close() }
	}
	v, err := overlay.New(o.overlayLayers(), opts)
	if err != nil {
		closeUpper()
		return nil, nil, fmt.Errorf("%s: %w", o.name, err)
	}
	return v, closeUpper, nil
}

// checkUpperDir refuses an upper directory that does not exist (commands that only read it must not
// create it).
func checkUpperDir(dir string) error {
	st, err := os.Stat(dir)
	if errors.Is(err, syscall.ENOTCONN) {
		return deadMountError(dir, errors.Unwrap(err))
	}
	if err != nil {
		return fmt.Errorf("upper directory %s: %w", dir, errors.Unwrap(err))
	}
	if !st.IsDir() {
		return fmt.Errorf("upper directory %s: not a directory", dir)
	}
	return nil
}

// deadMountError says that upper directory dir lies on a FUSE mount whose daemon is gone (ENOTCONN,
// "transport endpoint is not connected"), and how to clean it up.
func deadMountError(dir string, err error) error {
	return fmt.Errorf("upper directory %s: on a dead FUSE mount (its daemon is gone); clean it up with "+
		"`imgfs unmount MOUNTPOINT` or `fusermount3 -u MOUNTPOINT`: %w", dir, err)
}

// outerHold is archive.Options.Hold for the archive at path: the lease of a compressed archive's
// outer stream key, and its use recorded.
func outerHold(dir, path string, log *slog.Logger) func(digest.Digest) (io.Closer, error) {
	return func(key digest.Digest) (io.Closer, error) {
		k, ok := cache.Key(key, "")
		if !ok {
			return io.NopCloser(nil), nil
		}
		l, err := cache.Lock(dir, k)
		if err != nil {
			return nil, err
		}
		if err := cache.RecordUse(dir, k, path); err != nil {
			log.Warn("cache: use not recorded", "key", k, "err", err)
		}
		return l, nil
	}
}

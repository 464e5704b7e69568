package fs

import (
	"log/slog"
	"sync"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/imgfs/imgfs/overlay"
)

// DefaultTimeout is how long the kernel may cache entries and attributes when Options leave the timeouts
// zero. A read-only view never changes while mounted, and a writable one changes only through the mount,
// where each reply tells the kernel what changed: either way the timeout only bounds how long the kernel
// keeps answers it could ask for again.
const DefaultTimeout = time.Hour

// ReadOnlyTimeout replaces DefaultTimeout for a read-only view: its tree never changes while mounted,
// so the kernel may keep entries, attributes and absent names as long as it keeps anything (memory
// pressure still evicts them), and never has to ask again.
const ReadOnlyTimeout = 365 * 24 * time.Hour

// Options configure a file system and its mount.
type Options struct {
	// Logger receives debug lines about unexpected errors (which reach the kernel as EIO) and go-fuse's
	// request trace when Debug is set. Nil discards.
	Logger *slog.Logger
	// EntryTimeout is how long the kernel caches a name's lookup, including the absence of a name.
	// Zero means DefaultTimeout (ReadOnlyTimeout for a read-only view); a negative value disables
	// caching.
	EntryTimeout time.Duration
	// AttrTimeout is how long the kernel caches a node's attributes. Zero means DefaultTimeout
	// (ReadOnlyTimeout for a read-only view); a negative value disables caching.
	AttrTimeout time.Duration
	// AllowOther lets users other than the one mounting access the mount (mount option allow_other;
	// without root, fusermount allows it only with user_allow_other in /etc/fuse.conf).
	AllowOther bool
	// DirectMount makes the mount call mount(2) itself, which needs root, instead of running fusermount;
	// if that fails it falls back to fusermount.
	DirectMount bool
	// FsName is the source shown in the first column of /proc/mounts and df, e.g. the archive path.
	// Empty means "imgfs".
	FsName string
	// Debug logs every FUSE request and reply at debug level.
	Debug bool
	// ExtraOptions are passed on as mount options (-o), after ours. With DirectMount they must be
	// options that the kernel understands.
	ExtraOptions []string
	// UpperDir is the upper directory of a writable view: StatFs reports the space of the file system
	// holding it. Empty, or a read-only view: StatFs reports the view's usage (UsageReporter).
	UpperDir string
	// Pause, when set, lets a writable mount's changes be paused (see Pause).
	Pause *Pause
	// Evidence adds noexec and nosymfollow to a read-only mount's nosuid and nodev (see Mount).
	Evidence bool
}

func (o Options) entryTimeout(writable bool) time.Duration { return timeout(o.EntryTimeout, writable) }
func (o Options) attrTimeout(writable bool) time.Duration  { return timeout(o.AttrTimeout, writable) }

func timeout(d time.Duration, writable bool) time.Duration {
	switch {
	case d == 0 && !writable:
		return ReadOnlyTimeout
	case d == 0:
		return DefaultTimeout
	case d < 0:
		return 0
	}
	return d
}

// fileSystem serves a View as a fuse.RawFileSystem. FUSE node IDs are the view's nodes (the root is 1
// in both), so it keeps no per-node state at all: the only state is the table of open handles.
type fileSystem[D Dir] struct {
	fuse.RawFileSystem // ENOSYS for whatever is not implemented below

	view View[D]
	// wview is the view's writable side, nil when the view is served read-only.
	wview        WritableView
	upperDir     string
	log          *slog.Logger
	entryTimeout time.Duration
	attrTimeout  time.Duration
	// cacheDir lets the kernel keep directory listings in its page cache (FOPEN_CACHE_DIR). Only
	// benchmarks of the server itself turn it off.
	cacheDir bool

	// noOpen and noOpenDir: a read-only view answers OPEN and OPENDIR with ENOSYS when the kernel
	// can open without them (FUSE_NO_OPEN_SUPPORT, FUSE_NO_OPENDIR_SUPPORT); the kernel then opens
	// every file and directory itself, keeping their page cache (FOPEN_KEEP_CACHE, FOPEN_CACHE_DIR),
	// and sends READ, LSEEK and READDIR with no handle (Fh 0). Set by Init.
	noOpen, noOpenDir bool
	// noXattrs: a read-only view without a single extended attribute answers GETXATTR with ENOSYS,
	// so that the kernel answers every getxattr itself from then on (EOPNOTSUPP). Set by Init.
	noXattrs bool
	// noLabels: a read-only view where no node has security.selinux answers EOPNOTSUPP for it (see
	// XattrReporter). Set by Init.
	noLabels bool

	files handles[*fileHandle]
	dirs  handles[*dirHandle[D]]
	// byNode serves the requests without a handle (noOpen, noOpenDir).
	byNode   nodeFiles
	snapshot nodeDirs[D]

	// appendMu serializes writes to files opened with O_APPEND, so that each lands at the end.
	appendMu sync.Mutex
}

var _ fuse.RawFileSystem = (*fileSystem[Dir])(nil)

// newFileSystem returns the FUSE file system Mount serves for view: read-write when view is a
// WritableView whose Writable reports true, read-only otherwise.
func newFileSystem[D Dir](view View[D], opts Options) *fileSystem[D] {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fsys := &fileSystem[D]{
		RawFileSystem: fuse.NewDefaultRawFileSystem(),
		view:          view,
		log:           log,
		cacheDir:      true,
	}
	if w, ok := view.(WritableView); ok && w.Writable() {
		fsys.wview, fsys.upperDir = w, opts.UpperDir
	}
	fsys.entryTimeout, fsys.attrTimeout = opts.entryTimeout(fsys.writable()), opts.attrTimeout(fsys.writable())
	return fsys
}

// Init is called by the server before it serves: a writable view that copies directories up tells the
// kernel to drop their cached attributes (FUSE_NOTIFY_INVAL_INODE; the kernel does not call back, so
// this is safe while a request is being answered).
//
// A read-only view is opened without OPEN and OPENDIR where the kernel allows it, and without GETXATTR
// when it has no extended attributes at all (see the fields noOpen, noOpenDir and noXattrs).
func (fs *fileSystem[D]) Init(srv *fuse.Server) {
	if !fs.writable() {
		k := srv.KernelSettings().Flags64()
		fs.noOpen = k&fuse.CAP_NO_OPEN_SUPPORT != 0
		fs.noOpenDir = k&fuse.CAP_NO_OPENDIR_SUPPORT != 0
		x, ok := fs.view.(XattrReporter)
		fs.noXattrs = ok && !x.HasXattrs()
		fs.noLabels = ok && (fs.noXattrs || !x.HasXattr(selinuxXattr))
	}
	if n, ok := fs.wview.(DirCopyUpNotifier); ok && fs.writable() {
		n.OnDirCopyUp(func(node overlay.Node) {
			if st := srv.InodeNotify(uint64(node), -1, 0); st != fuse.OK && st != fuse.ENOENT {
				fs.log.Debug("invalidating a copied-up directory's attributes", "node", uint64(node), "status", st)
			}
		})
	}
}

// writable reports whether the file system accepts changes.
func (fs *fileSystem[D]) writable() bool { return fs.wview != nil }

// String names the file system; go-fuse uses it in debug output.
func (fs *fileSystem[D]) String() string { return "imgfs" }

// handles is a table of open handles keyed by the FUSE file handle (Fh). Handle 0 is never used.
type handles[T any] struct {
	mu   sync.RWMutex
	next uint64
	m    map[uint64]T
}

func (t *handles[T]) add(v T) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[uint64]T)
	}
	t.next++
	t.m[t.next] = v
	return t.next
}

func (t *handles[T]) get(fh uint64) (T, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	v, ok := t.m[fh]
	return v, ok
}

func (t *handles[T]) remove(fh uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, fh)
}

// find returns a handle for which match reports true. It visits every handle: it is for rare cases.
func (t *handles[T]) find(match func(T) bool) (T, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, v := range t.m {
		if match(v) {
			return v, true
		}
	}
	var zero T
	return zero, false
}

func (t *handles[T]) len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.m)
}

package overlay

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/ovlfmt"
	"golang.org/x/sys/unix"
)

// upHandle is a regular file opened through a writable view. It reads a lower member until the node is
// copied up (another open asked for writing), and from then on the upper file.
type upHandle struct {
	s     *upperState
	node  Node
	write bool
	src   atomic.Pointer[hsrc]

	mu     sync.Mutex // orders switching to the upper file against Close
	closed bool
}

// hsrc is where a handle reads: a lower member (as of copy-up generation gen) or an upper file.
type hsrc struct {
	lower *memberFile
	gen   uint64
	f     *os.File
}

var _ WFile = (*upHandle)(nil)

// cur returns the handle's source, switching to the upper file once the node has been copied up.
func (h *upHandle) cur() *hsrc {
	c := h.src.Load()
	if c.lower != nil && h.s.gen.Load() != c.gen {
		c = h.switchUp()
	}
	return c
}

// switchUp moves a lower handle to the upper file when its node has one.
func (h *upHandle) switchUp() *hsrc {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.src.Load()
	if c.lower == nil || h.closed {
		return c
	}
	h.s.mu.RLock()
	defer h.s.mu.RUnlock()
	gen := h.s.gen.Load()
	if !h.s.has(h.node) {
		nc := &hsrc{lower: c.lower, gen: gen}
		h.src.Store(nc)
		return nc
	}
	f, err := h.s.openUpperLocked(h.node, unix.O_RDONLY, h)
	if err != nil {
		h.s.log.Warn("overlay: opening the upper copy of an open file", "node", h.node, "err", err)
		return c
	}
	nc := &hsrc{f: f}
	h.src.Store(nc)
	return nc
}

// ReadAt reads from the file's current data.
func (h *upHandle) ReadAt(p []byte, off int64) (int, error) {
	c := h.cur()
	if c.lower != nil {
		return c.lower.ReadAt(p, off)
	}
	return c.f.ReadAt(p, off)
}

// Size returns the file's current size.
func (h *upHandle) Size() int64 {
	c := h.cur()
	if c.lower != nil {
		return c.lower.size
	}
	fi, err := c.f.Stat()
	if err != nil {
		return 0
	}
	return fi.Size()
}

// CheckSource checks the lower member's archive while the file is lower.
func (h *upHandle) CheckSource() error {
	if c := h.cur(); c.lower != nil {
		return checkSource(c.lower)
	}
	return nil
}

// FileRange returns the lower member's plain file range while the file is lower.
func (h *upHandle) FileRange() (*os.File, int64, bool) {
	c := h.cur()
	if c.lower != nil {
		return c.lower.FileRange()
	}
	return nil, 0, false
}

// WriteAt writes to the upper file.
func (h *upHandle) WriteAt(p []byte, off int64) (int, error) {
	if !h.write {
		return 0, ErrReadOnly
	}
	h.s.opmu.RLock()
	defer h.s.opmu.RUnlock()
	return h.src.Load().f.WriteAt(p, off)
}

// Truncate changes the upper file's size.
func (h *upHandle) Truncate(size int64) error {
	if !h.write {
		return ErrReadOnly
	}
	h.s.opmu.RLock()
	defer h.s.opmu.RUnlock()
	return h.src.Load().f.Truncate(size)
}

// Sync flushes the upper file.
func (h *upHandle) Sync() error {
	if c := h.src.Load(); c.f != nil {
		return c.f.Sync()
	}
	return nil
}

// Close releases the handle.
func (h *upHandle) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	c := h.src.Load()
	if c.f == nil {
		return nil
	}
	h.s.unregister(h.node, h)
	return c.f.Close()
}

// openUpperLocked opens node n's upper file with flags for handle h (caller holds mu or wmu).
func (s *upperState) openUpperLocked(n Node, flags int, h *upHandle) (*os.File, error) {
	d, name, err := s.target(n)
	if err != nil {
		return nil, err
	}
	defer d.close()
	var fd int
	if name == "" {
		fd, err = unix.Open(procFD(d.fd), flags|unix.O_CLOEXEC, 0)
		if err != nil {
			err = d.err("open", "", err)
		}
	} else {
		fd, err = d.openChild(name, flags, 0)
	}
	if err != nil {
		return nil, err
	}
	// The data of a file that the kernel's metacopy copied up is not in it: refused, as the commit does.
	if err := ovlfmt.CheckFile(d.childGet(name, procFD(fd))); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", filepath.Join(s.fs.dir, d.path(name)), err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(s.fs.dir, d.path(name)))
	s.register(n, h, fd)
	return f, nil
}

// register notes that handle h holds descriptor fd of node n's upper file.
func (s *upperState) register(n Node, h *upHandle, fd int) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if r := s.recs[n]; r != nil {
		r.files = append(slices.Clip(r.files), fileRef{h: h, fd: fd})
	}
}

// unregister forgets handle h of node n, and the node when it has neither names nor open files left.
func (s *upperState) unregister(n Node, h *upHandle) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	r := s.recs[n]
	if r == nil {
		return
	}
	r.files = slices.DeleteFunc(slices.Clone(r.files), func(f fileRef) bool { return f.h == h })
	if len(r.locs) == 0 && len(r.files) == 0 && n != Root {
		delete(s.recs, n)
	}
}

// open returns a read-only handle of regular file n.
func (s *upperState) open(n Node) (File, error) {
	return s.openRead(n)
}

// openRead returns a read-only handle of regular file n: on the upper file when there is one, else on
// the lower member (switching to the upper file once the node is copied up).
func (s *upperState) openRead(n Node) (*upHandle, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	h := &upHandle{s: s, node: n}
	if r, ok := s.get(n); ok {
		switch r.typ {
		case index.TypeRegular:
		case index.TypeDir:
			return nil, ErrIsDir
		default:
			return nil, ErrInvalid
		}
		f, err := s.openUpperLocked(n, unix.O_RDONLY, h)
		if err != nil {
			return nil, err
		}
		h.src.Store(&hsrc{f: f})
		return h, nil
	}
	if n&upperBit != 0 {
		return nil, ErrNotExist
	}
	gen := s.gen.Load()
	lf, err := s.v.lowerOpen(n)
	if err != nil {
		return nil, err
	}
	h.src.Store(&hsrc{lower: lf.(*memberFile), gen: gen})
	return h, nil
}

// openFile opens regular file n, for writing when write or trunc is set (copying it up first).
func (s *upperState) openFile(n Node, write, trunc bool) (WFile, error) {
	if !write && !trunc {
		return s.openRead(n)
	}
	s.wmu.Lock()
	a, err := s.attrLocked(n)
	if err == nil {
		switch a.Type {
		case index.TypeRegular:
			keep := int64(-1)
			if trunc {
				keep = 0
			}
			err = s.copyUpKeep(n, keep)
		case index.TypeDir:
			err = ErrIsDir
		default:
			err = ErrInvalid
		}
	}
	s.wmu.Unlock()
	if err != nil {
		return nil, err
	}
	h := &upHandle{s: s, node: n, write: write}
	s.mu.RLock()
	f, err := s.openUpperLocked(n, unix.O_RDWR, h)
	if err != nil && errors.Is(err, unix.EACCES) {
		f, err = s.openUpperLocked(n, unix.O_WRONLY, h)
	}
	s.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	h.src.Store(&hsrc{f: f})
	if trunc {
		s.opmu.RLock()
		err = f.Truncate(0)
		s.opmu.RUnlock()
		if err != nil {
			h.Close()
			return nil, err
		}
	}
	return h, nil
}

package fs

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

// fakeWView is a fakeView that can change: an in-memory WritableView. Nodes are never deleted, so that a
// file open when its last name goes keeps its attributes (Nlink 0), as a real view must.
type fakeWView struct {
	*fakeView
	readOnly bool // Writable reports false

	syncs     atomic.Int64 // calls of Sync
	fileSyncs atomic.Int64 // calls of a file's Sync
	closes    atomic.Int64 // calls of a file's Close
	opens     atomic.Int64 // calls of OpenFile with write set
	truncs    atomic.Int64 // calls of OpenFile with trunc set
	writes    atomic.Int64 // calls of a file's WriteAt
	failNext  error        // returned once by the next change, then cleared
}

var _ WritableView = (*fakeWView)(nil)

func newFakeWView() *fakeWView { return &fakeWView{fakeView: newFakeView()} }

func (v *fakeWView) Writable() bool { return !v.readOnly }

// begin locks the view for a change of directory parent's entry name and returns the directory.
func (v *fakeWView) begin(op string, parent overlay.Node, name string) (*fakeNode, error) {
	v.mu.Lock()
	if err := v.failNext; err != nil {
		v.failNext = nil
		return nil, err
	}
	if strings.HasPrefix(name, ".wh.") {
		return nil, fmt.Errorf("%s %q: %w", op, name, overlay.ErrReservedName)
	}
	p, ok := v.nodes[parent]
	if !ok {
		return nil, fmt.Errorf("%s: node %d: %w", op, parent, overlay.ErrNotExist)
	}
	if p.kids == nil {
		return nil, fmt.Errorf("%s: %w", op, overlay.ErrNotDir)
	}
	return p, nil
}

// create adds a new node under p; v.mu is held.
func (v *fakeWView) create(p *fakeNode, name string, typ index.Type, mode uint32, c overlay.Caller) (*fakeNode, error) {
	if _, ok := p.kids[name]; ok {
		return nil, fmt.Errorf("create %q: %w", name, overlay.ErrExist)
	}
	v.next++
	now := time.Now()
	n := &fakeNode{attr: overlay.Attr{
		Node: v.next | 1<<63, Type: typ, Mode: mode & 07777, Nlink: 1, UID: c.UID, GID: c.GID,
		MtimeSec: now.Unix(), MtimeNsec: uint32(now.Nanosecond()), Layer: 1,
	}}
	if typ == index.TypeDir {
		n.kids = map[string]overlay.Node{}
	}
	v.nodes[n.attr.Node] = n
	p.kids[name] = n.attr.Node
	p.sorted = nil
	v.touch(p)
	return n, nil
}

func (v *fakeWView) touch(n *fakeNode) {
	now := time.Now()
	n.attr.MtimeSec, n.attr.MtimeNsec = now.Unix(), uint32(now.Nanosecond())
}

func (v *fakeWView) Create(parent overlay.Node, name string, mode uint32, c overlay.Caller) (overlay.Attr, overlay.WFile, error) {
	p, err := v.begin("create", parent, name)
	defer v.mu.Unlock()
	if err != nil {
		return overlay.Attr{}, nil, err
	}
	n, err := v.create(p, name, index.TypeRegular, mode, c)
	if err != nil {
		return overlay.Attr{}, nil, err
	}
	return n.attr, &fakeWFile{v: v, n: n}, nil
}

func (v *fakeWView) Mkdir(parent overlay.Node, name string, mode uint32, c overlay.Caller) (overlay.Attr, error) {
	p, err := v.begin("mkdir", parent, name)
	defer v.mu.Unlock()
	if err != nil {
		return overlay.Attr{}, err
	}
	n, err := v.create(p, name, index.TypeDir, mode, c)
	if err != nil {
		return overlay.Attr{}, err
	}
	return n.attr, nil
}

func (v *fakeWView) Mknod(parent overlay.Node, name string, typ index.Type, mode uint32, major, minor uint32, c overlay.Caller) (overlay.Attr, error) {
	p, err := v.begin("mknod", parent, name)
	defer v.mu.Unlock()
	if err != nil {
		return overlay.Attr{}, err
	}
	switch typ {
	case index.TypeFIFO, index.TypeChar, index.TypeBlock, index.TypeSocket:
	default:
		return overlay.Attr{}, fmt.Errorf("mknod %v: %w", typ, overlay.ErrInvalid)
	}
	n, err := v.create(p, name, typ, mode, c)
	if err != nil {
		return overlay.Attr{}, err
	}
	n.attr.Devmajor, n.attr.Devminor = major, minor
	return n.attr, nil
}

func (v *fakeWView) Symlink(parent overlay.Node, name, target string, c overlay.Caller) (overlay.Attr, error) {
	p, err := v.begin("symlink", parent, name)
	defer v.mu.Unlock()
	if err != nil {
		return overlay.Attr{}, err
	}
	n, err := v.create(p, name, index.TypeSymlink, 0o777, c)
	if err != nil {
		return overlay.Attr{}, err
	}
	n.target = target
	n.attr.Size = int64(len(target))
	return n.attr, nil
}

func (v *fakeWView) Link(target, newParent overlay.Node, newName string) (overlay.Attr, error) {
	p, err := v.begin("link", newParent, newName)
	defer v.mu.Unlock()
	if err != nil {
		return overlay.Attr{}, err
	}
	t, ok := v.nodes[target]
	switch {
	case !ok:
		return overlay.Attr{}, overlay.ErrNotExist
	case t.kids != nil:
		return overlay.Attr{}, fmt.Errorf("link: %w", overlay.ErrIsDir)
	}
	if _, ok := p.kids[newName]; ok {
		return overlay.Attr{}, fmt.Errorf("link %q: %w", newName, overlay.ErrExist)
	}
	p.kids[newName] = target
	p.sorted = nil
	t.attr.Nlink++
	v.touch(p)
	return t.attr, nil
}

// remove drops name from p; v.mu is held.
func (v *fakeWView) remove(p *fakeNode, name string, dir bool) error {
	id, ok := p.kids[name]
	if !ok {
		return fmt.Errorf("remove %q: %w", name, overlay.ErrNotExist)
	}
	n := v.nodes[id]
	switch {
	case dir && n.kids == nil:
		return fmt.Errorf("rmdir %q: %w", name, overlay.ErrNotDir)
	case !dir && n.kids != nil:
		return fmt.Errorf("unlink %q: %w", name, overlay.ErrIsDir)
	case dir && len(n.kids) > 0:
		return fmt.Errorf("rmdir %q: %w", name, overlay.ErrNotEmpty)
	}
	delete(p.kids, name)
	p.sorted = nil
	n.attr.Nlink--
	if dir {
		n.attr.Nlink = 0
	}
	v.touch(p)
	return nil
}

func (v *fakeWView) Unlink(parent overlay.Node, name string) error {
	p, err := v.begin("unlink", parent, name)
	defer v.mu.Unlock()
	if err != nil {
		return err
	}
	return v.remove(p, name, false)
}

func (v *fakeWView) Rmdir(parent overlay.Node, name string) error {
	p, err := v.begin("rmdir", parent, name)
	defer v.mu.Unlock()
	if err != nil {
		return err
	}
	return v.remove(p, name, true)
}

func (v *fakeWView) Rename(oldParent overlay.Node, oldName string, newParent overlay.Node, newName string, flags overlay.RenameFlags) error {
	np, err := v.begin("rename", newParent, newName)
	defer v.mu.Unlock()
	if err != nil {
		return err
	}
	op, ok := v.nodes[oldParent]
	if !ok || op.kids == nil {
		return fmt.Errorf("rename: %w", overlay.ErrNotExist)
	}
	src, ok := op.kids[oldName]
	if !ok {
		return fmt.Errorf("rename %q: %w", oldName, overlay.ErrNotExist)
	}
	dst, exists := np.kids[newName]
	switch {
	case flags == overlay.RenameExchange:
		if !exists {
			return fmt.Errorf("rename %q: %w", newName, overlay.ErrNotExist)
		}
		op.kids[oldName], np.kids[newName] = dst, src
	case exists && flags == overlay.RenameNoReplace:
		return fmt.Errorf("rename %q: %w", newName, overlay.ErrExist)
	case exists && src == dst:
		return nil
	default:
		if exists {
			d := v.nodes[dst]
			switch {
			case d.kids != nil && v.nodes[src].kids == nil:
				return fmt.Errorf("rename: %w", overlay.ErrIsDir)
			case d.kids == nil && v.nodes[src].kids != nil:
				return fmt.Errorf("rename: %w", overlay.ErrNotDir)
			case d.kids != nil && len(d.kids) > 0:
				return fmt.Errorf("rename: %w", overlay.ErrNotEmpty)
			}
			d.attr.Nlink--
			if d.kids != nil {
				d.attr.Nlink = 0
			}
		}
		delete(op.kids, oldName)
		np.kids[newName] = src
	}
	op.sorted, np.sorted = nil, nil
	v.touch(op)
	v.touch(np)
	return nil
}

func (v *fakeWView) SetAttr(n overlay.Node, in overlay.SetAttrIn) (overlay.Attr, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.failNext; err != nil {
		v.failNext = nil
		return overlay.Attr{}, err
	}
	fn, ok := v.nodes[n]
	if !ok {
		return overlay.Attr{}, overlay.ErrNotExist
	}
	if in.Mode != nil {
		fn.attr.Mode = *in.Mode & 07777
	}
	if in.UID != nil {
		fn.attr.UID = *in.UID
	}
	if in.GID != nil {
		fn.attr.GID = *in.GID
	}
	if in.Size != nil {
		if fn.attr.Type != index.TypeRegular {
			return overlay.Attr{}, fmt.Errorf("truncate: %w", overlay.ErrInvalid)
		}
		fn.truncate(*in.Size)
	}
	if in.Mtime != nil {
		fn.attr.MtimeSec, fn.attr.MtimeNsec = in.Mtime.Unix(), uint32(in.Mtime.Nanosecond())
	}
	return fn.attr, nil
}

// truncate sets the size of a regular file's data; the view's lock is held.
func (n *fakeNode) truncate(size int64) {
	if size <= int64(len(n.data)) {
		n.data = n.data[:size:size]
	} else {
		n.data = append(n.data, make([]byte, size-int64(len(n.data)))...)
	}
	n.attr.Size = size
	n.attr.Blocks = (size + 511) / 512
}

func (v *fakeWView) SetXattr(n overlay.Node, name string, value []byte, flags int) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	fn, ok := v.nodes[n]
	if !ok {
		return overlay.ErrNotExist
	}
	i := slices.IndexFunc(fn.xattrs, func(x index.Xattr) bool { return x.Name == name })
	switch {
	case i >= 0 && flags&unix.XATTR_CREATE != 0:
		return fmt.Errorf("setxattr %s: %w", name, overlay.ErrExist)
	case i < 0 && flags&unix.XATTR_REPLACE != 0:
		return fmt.Errorf("setxattr %s: %w", name, overlay.ErrNotExist)
	}
	xs := slices.Clone(fn.xattrs) // listings handed out before stay as they were
	x := index.Xattr{Name: name, Value: slices.Clone(value)}
	if i >= 0 {
		xs[i] = x
	} else {
		xs = append(xs, x)
	}
	fn.xattrs = xs
	return nil
}

func (v *fakeWView) RemoveXattr(n overlay.Node, name string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	fn, ok := v.nodes[n]
	if !ok {
		return overlay.ErrNotExist
	}
	i := slices.IndexFunc(fn.xattrs, func(x index.Xattr) bool { return x.Name == name })
	if i < 0 {
		return fmt.Errorf("removexattr %s: %w", name, overlay.ErrNotExist)
	}
	fn.xattrs = slices.Delete(slices.Clone(fn.xattrs), i, i+1)
	return nil
}

func (v *fakeWView) OpenFile(n overlay.Node, write, trunc bool) (overlay.WFile, error) {
	fn, err := v.node(n)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	switch fn.attr.Type {
	case index.TypeRegular:
	case index.TypeDir:
		return nil, fmt.Errorf("open: %w", overlay.ErrIsDir)
	default:
		return nil, fmt.Errorf("open %v: %w", fn.attr.Type, overlay.ErrInvalid)
	}
	if write {
		v.opens.Add(1)
	}
	if trunc {
		v.truncs.Add(1)
		fn.truncate(0)
	}
	return &fakeWFile{v: v, n: fn}, nil
}

// Open returns a file that reads the node's current data, whatever is written after it was opened. It
// cannot be synced; closing it does nothing.
func (v *fakeWView) Open(n overlay.Node) (overlay.File, error) {
	f, err := v.fakeView.Open(n)
	if err != nil {
		return nil, err
	}
	return fakeRFile{&fakeWFile{v: v, n: f.(*fakeFile).n}}, nil
}

// fakeRFile is a file of a fakeWView open for reading only.
type fakeRFile struct{ f *fakeWFile }

func (r fakeRFile) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAt(p, off) }
func (r fakeRFile) Size() int64                             { return r.f.Size() }
func (r fakeRFile) FileRange() (*os.File, int64, bool)      { return nil, 0, false }
func (r fakeRFile) Close() error                            { return nil }

func (v *fakeWView) Sync() error {
	v.syncs.Add(1)
	return nil
}

// fakeWFile is an open file of a fakeWView.
type fakeWFile struct {
	v      *fakeWView
	n      *fakeNode
	closed atomic.Bool
}

func (f *fakeWFile) ReadAt(p []byte, off int64) (int, error) {
	f.v.mu.Lock()
	defer f.v.mu.Unlock()
	if off >= int64(len(f.n.data)) {
		return 0, fmt.Errorf("read at %d: %w", off, io.EOF)
	}
	n := copy(p, f.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *fakeWFile) WriteAt(p []byte, off int64) (int, error) {
	if f.closed.Load() {
		return 0, os.ErrClosed
	}
	f.v.writes.Add(1)
	f.v.mu.Lock()
	defer f.v.mu.Unlock()
	if end := off + int64(len(p)); end > int64(len(f.n.data)) {
		f.n.truncate(end)
	}
	copy(f.n.data[off:], p)
	f.v.touch(f.n)
	return len(p), nil
}

func (f *fakeWFile) Truncate(size int64) error {
	f.v.mu.Lock()
	defer f.v.mu.Unlock()
	f.n.truncate(size)
	return nil
}

func (f *fakeWFile) Size() int64 {
	f.v.mu.Lock()
	defer f.v.mu.Unlock()
	return int64(len(f.n.data))
}

func (f *fakeWFile) FileRange() (*os.File, int64, bool) { return nil, 0, false }
func (f *fakeWFile) Sync() error                        { f.v.fileSyncs.Add(1); return nil }

func (f *fakeWFile) Close() error {
	if f.closed.Swap(true) {
		return os.ErrClosed
	}
	f.v.closes.Add(1)
	return nil
}

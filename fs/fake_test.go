package fs

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

// fakeView is an in-memory View for tests, built with its add methods before it is served.
type fakeView struct {
	mu    sync.Mutex
	nodes map[overlay.Node]*fakeNode
	next  overlay.Node

	attrCalls    atomic.Int64
	lookupCalls  atomic.Int64
	readDirCalls atomic.Int64
}

type fakeNode struct {
	attr    overlay.Attr
	kids    map[string]overlay.Node
	sorted  []overlay.DirEntry // cache of the listing, reset by add
	target  string
	xattrs  []index.Xattr
	data    []byte   // contents, served by ReadAt
	file    *os.File // when set, the data lies at base in file, and FileRange says so
	base    int64
	noRange bool  // with file: ReadAt reads it, but FileRange says no
	failErr error // returned by every method for this node
}

type fakeDir struct{ entries []overlay.DirEntry }

func (d *fakeDir) Len() int                     { return len(d.entries) }
func (d *fakeDir) Entry(i int) overlay.DirEntry { return d.entries[i] }

var _ View[*fakeDir] = (*fakeView)(nil)

const fakeMtime = 1_700_000_000

func newFakeView() *fakeView {
	v := &fakeView{nodes: make(map[overlay.Node]*fakeNode), next: 1 << 32}
	v.nodes[overlay.Root] = &fakeNode{
		attr: overlay.Attr{Node: overlay.Root, Type: index.TypeDir, Mode: 0o755, Nlink: 2, MtimeSec: fakeMtime},
		kids: map[string]overlay.Node{},
	}
	return v
}

// add creates a node of the given type under parent and returns it.
func (v *fakeView) add(parent overlay.Node, name string, typ index.Type, mode uint32) *fakeNode {
	v.mu.Lock()
	defer v.mu.Unlock()
	p := v.nodes[parent]
	v.next++
	n := &fakeNode{attr: overlay.Attr{
		Node: v.next, Type: typ, Mode: mode, Nlink: 1, UID: 1000, GID: 100,
		MtimeSec: fakeMtime, MtimeNsec: 123456789, Layer: 0,
	}}
	if typ == index.TypeDir {
		n.kids = map[string]overlay.Node{}
		n.attr.Nlink = 2
	}
	v.nodes[n.attr.Node] = n
	p.kids[name] = n.attr.Node
	p.sorted = nil
	return n
}

func (v *fakeView) dir(parent overlay.Node, name string) overlay.Node {
	return v.add(parent, name, index.TypeDir, 0o755).attr.Node
}

func (v *fakeView) file(parent overlay.Node, name string, data []byte) *fakeNode {
	n := v.add(parent, name, index.TypeRegular, 0o644)
	n.data = data
	n.attr.Size = int64(len(data))
	n.attr.Blocks = (int64(len(data)) + 511) / 512
	return n
}

func (v *fakeView) symlink(parent overlay.Node, name, target string) *fakeNode {
	n := v.add(parent, name, index.TypeSymlink, 0o777)
	n.target = target
	return n
}

func (v *fakeView) device(parent overlay.Node, name string, typ index.Type, major, minor uint32) *fakeNode {
	n := v.add(parent, name, typ, 0o600)
	n.attr.Devmajor, n.attr.Devminor = major, minor
	return n
}

// hardlink adds name under parent as another name of target.
func (v *fakeView) hardlink(parent overlay.Node, name string, target overlay.Node) {
	v.mu.Lock()
	defer v.mu.Unlock()
	p := v.nodes[parent]
	p.kids[name] = target
	p.sorted = nil
	v.nodes[target].attr.Nlink++
}

func (v *fakeView) node(n overlay.Node) (*fakeNode, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	fn, ok := v.nodes[n]
	if !ok {
		return nil, fmt.Errorf("fake node %d: %w", n, overlay.ErrNotExist)
	}
	if fn.failErr != nil {
		return nil, fn.failErr
	}
	return fn, nil
}

func (v *fakeView) Attr(n overlay.Node) (overlay.Attr, error) {
	v.attrCalls.Add(1)
	fn, err := v.node(n)
	if err != nil {
		return overlay.Attr{}, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return fn.attr, nil
}

func (v *fakeView) Lookup(parent overlay.Node, name string) (overlay.Attr, error) {
	v.lookupCalls.Add(1)
	p, err := v.node(parent)
	if err != nil {
		return overlay.Attr{}, err
	}
	v.mu.Lock()
	if p.kids == nil {
		v.mu.Unlock()
		return overlay.Attr{}, fmt.Errorf("lookup %q: %w", name, overlay.ErrNotDir)
	}
	n, ok := p.kids[name]
	v.mu.Unlock()
	if !ok {
		return overlay.Attr{}, fmt.Errorf("lookup %q: %w", name, overlay.ErrNotExist)
	}
	return v.Attr(n)
}

func (v *fakeView) ReadDir(n overlay.Node) (*fakeDir, error) {
	v.readDirCalls.Add(1)
	fn, err := v.node(n)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if fn.kids == nil {
		return nil, fmt.Errorf("readdir: %w", overlay.ErrNotDir)
	}
	if fn.sorted == nil {
		fn.sorted = make([]overlay.DirEntry, 0, len(fn.kids))
		for name, k := range fn.kids {
			fn.sorted = append(fn.sorted, overlay.DirEntry{Name: name, Node: k, Type: v.nodes[k].attr.Type})
		}
		slices.SortFunc(fn.sorted, func(a, b overlay.DirEntry) int { return strings.Compare(a.Name, b.Name) })
	}
	return &fakeDir{entries: fn.sorted}, nil
}

func (v *fakeView) Readlink(n overlay.Node) (string, error) {
	fn, err := v.node(n)
	if err != nil {
		return "", err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if fn.attr.Type != index.TypeSymlink {
		return "", fmt.Errorf("readlink: %w", overlay.ErrInvalid)
	}
	return fn.target, nil
}

func (v *fakeView) Xattrs(n overlay.Node) ([]index.Xattr, error) {
	fn, err := v.node(n)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return fn.xattrs, nil
}

func (v *fakeView) Open(n overlay.Node) (overlay.File, error) {
	fn, err := v.node(n)
	if err != nil {
		return nil, err
	}
	switch fn.attr.Type {
	case index.TypeRegular:
		return &fakeFile{n: fn, r: bytes.NewReader(fn.data)}, nil
	case index.TypeDir:
		return nil, fmt.Errorf("open: %w", overlay.ErrIsDir)
	}
	return nil, fmt.Errorf("open %v: %w", fn.attr.Type, overlay.ErrInvalid)
}

type fakeFile struct {
	n *fakeNode
	r *bytes.Reader
}

func (f *fakeFile) ReadAt(p []byte, off int64) (int, error) {
	if f.n.file != nil {
		return io.NewSectionReader(f.n.file, f.n.base, f.n.attr.Size).ReadAt(p, off)
	}
	return f.r.ReadAt(p, off)
}

func (f *fakeFile) Size() int64 { return f.n.attr.Size }
func (f *fakeFile) FileRange() (*os.File, int64, bool) {
	return f.n.file, f.n.base, f.n.file != nil && !f.n.noRange
}

func (f *fakeFile) Close() error { return nil }

var _ io.ReaderAt = (*fakeFile)(nil)

// fixture is a view holding one node of each kind, with the nodes kept for assertions.
type fixture struct {
	v                         *fakeView
	dir, sub                  overlay.Node
	file, spliced, empty      *fakeNode
	link, chr, blk, fifo, big *fakeNode
	splicedData               []byte
}

// capNetBindService is a valid security.capability value (VFS_CAP_REVISION_2, effective,
// permitted cap_net_bind_service): the kernel checks the format of this attribute.
var capNetBindService = []byte{1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// trailer follows the spliced file's data in its backing file: a read must never show it.
const trailer = "TRAILER-MUST-NOT-LEAK"

func newFixture(backing string) (*fixture, error) {
	v := newFakeView()
	fx := &fixture{v: v}
	fx.dir = v.dir(overlay.Root, "dir")
	fx.sub = v.dir(fx.dir, "sub")
	fx.file = v.file(overlay.Root, "file", []byte("hello, world\n"))
	fx.file.xattrs = []index.Xattr{
		{Name: "user.comment", Value: []byte("a comment")},
		{Name: "security.capability", Value: capNetBindService},
	}
	v.hardlink(fx.dir, "hardlink", fx.file.attr.Node)
	fx.empty = v.file(overlay.Root, "empty", nil)
	fx.link = v.symlink(overlay.Root, "link", "dir/sub/../../file")
	fx.chr = v.device(overlay.Root, "null", index.TypeChar, 1, 3)
	fx.blk = v.device(overlay.Root, "loop", index.TypeBlock, 259, 1<<19+5) // large minor: both encodings
	fx.fifo = v.add(overlay.Root, "fifo", index.TypeFIFO, 0o644)
	fx.fifo.attr.MtimeSec = -86400 // before 1970
	fx.fifo.attr.MtimeNsec = 5

	// spliced: its data lies in the middle of a larger file.
	fx.splicedData = bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320000 bytes, > one request
	if backing != "" {
		header := []byte("HEADER")
		content := slices.Concat(header, fx.splicedData, []byte(trailer))
		if err := os.WriteFile(backing, content, 0o644); err != nil {
			return nil, err
		}
		f, err := os.Open(backing)
		if err != nil {
			return nil, err
		}
		fx.spliced = v.file(overlay.Root, "spliced", fx.splicedData)
		fx.spliced.file, fx.spliced.base = f, int64(len(header))
	}
	// big is a file served by ReadAt whose reader holds more bytes than its size says.
	fx.big = v.file(overlay.Root, "big", []byte("0123456789"))
	fx.big.data = []byte("0123456789" + trailer)
	fx.big.attr.Size = 10
	return fx, nil
}

package overlay

import (
	"archive/tar"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/tartest"
)

// fakeLayer is an in-memory layer table built from tartest members the way package index builds its
// tables: names normalised, implied parents added, duplicates resolved (last wins), children contiguous
// and sorted, hard links linked within the layer.
type fakeLayer struct {
	entries   []index.Entry
	names     []string
	links     []string
	paths     []string
	first     []index.ID
	count     []int
	xattrs    [][]index.Xattr
	data      [][]byte
	hardlinks []index.ID
}

var _ Layer = (*fakeLayer)(nil)

// fnode is a node of the tree a fakeLayer is built from.
type fnode struct {
	e      index.Entry
	link   string
	xattrs []index.Xattr
	data   []byte
	kids   map[string]*fnode
}

// normPath normalises a member name like package index: "./" and leading "/" stripped, "." and empty
// components dropped; ok is false for a name that would leave the root.
func normPath(name string) (parts []string, ok bool) {
	for _, p := range strings.Split(name, "/") {
		switch p {
		case "", ".":
		case "..":
			return nil, false
		default:
			parts = append(parts, p)
		}
	}
	return parts, true
}

func impliedDir() *fnode {
	return &fnode{e: index.Entry{Type: index.TypeDir, Flags: index.FlagImplied, Mode: 0o755}, kids: map[string]*fnode{}}
}

func memberType(b byte) index.Type {
	switch b {
	case tar.TypeDir:
		return index.TypeDir
	case tar.TypeSymlink:
		return index.TypeSymlink
	case tar.TypeLink:
		return index.TypeHardlink
	case tar.TypeChar:
		return index.TypeChar
	case tar.TypeBlock:
		return index.TypeBlock
	case tar.TypeFifo:
		return index.TypeFIFO
	}
	return index.TypeRegular
}

// newFakeLayer builds a layer table from members in tar order.
func newFakeLayer(members ...tartest.Member) *fakeLayer {
	root := impliedDir()
	for _, m := range members {
		parts, ok := normPath(m.Name)
		if !ok {
			continue
		}
		n := &fnode{e: index.Entry{Type: memberType(m.Type)}}
		mode := m.Mode
		if mode == 0 {
			mode = 0o644
			if n.e.Type == index.TypeDir {
				mode = 0o755
			}
		}
		n.e.Mode = uint32(mode) & 0o7777
		n.e.UID, n.e.GID = uint32(m.UID), uint32(m.GID)
		if !m.Mtime.IsZero() {
			n.e.MtimeSec, n.e.MtimeNsec = m.Mtime.Unix(), uint32(m.Mtime.Nanosecond())
		} else {
			n.e.MtimeSec = 1704067200
		}
		n.e.Devmajor, n.e.Devminor = uint32(m.Devmajor), uint32(m.Devminor)
		switch n.e.Type {
		case index.TypeRegular:
			n.data = m.Body
			n.e.Size = int64(len(m.Body))
		case index.TypeDir:
			n.kids = map[string]*fnode{}
		case index.TypeSymlink:
			n.link = m.Linkname
		case index.TypeHardlink:
			lp, _ := normPath(m.Linkname)
			n.link = strings.Join(lp, "/")
		}
		for k, val := range m.Xattrs {
			n.xattrs = append(n.xattrs, index.Xattr{Name: k, Value: []byte(val)})
		}
		slices.SortFunc(n.xattrs, func(a, b index.Xattr) int { return strings.Compare(a.Name, b.Name) })
		if len(n.xattrs) > 0 {
			n.e.Flags |= index.FlagXattrs
		}
		if len(parts) == 0 {
			if n.e.Type == index.TypeDir {
				n.kids = root.kids
				root = n
			}
			continue
		}
		dir := root
		for _, p := range parts[:len(parts)-1] {
			c := dir.kids[p]
			if c == nil || c.e.Type != index.TypeDir {
				c = impliedDir()
				dir.kids[p] = c
			}
			dir = c
		}
		name := parts[len(parts)-1]
		if old := dir.kids[name]; old != nil && old.e.Type == index.TypeDir && n.e.Type == index.TypeDir {
			n.kids = old.kids
		}
		dir.kids[name] = n
	}

	l := &fakeLayer{}
	type item struct {
		n      *fnode
		parent index.ID
		name   string
		path   string
	}
	queue := []item{{n: root}}
	for i := 0; i < len(queue); i++ {
		it := queue[i]
		e := it.n.e
		e.Parent = it.parent
		e.Link = index.NoID
		l.entries = append(l.entries, e)
		l.names = append(l.names, it.name)
		l.links = append(l.links, it.n.link)
		l.paths = append(l.paths, it.path)
		l.xattrs = append(l.xattrs, it.n.xattrs)
		l.data = append(l.data, it.n.data)
		names := make([]string, 0, len(it.n.kids))
		for k := range it.n.kids {
			names = append(names, k)
		}
		slices.Sort(names)
		l.first = append(l.first, index.ID(len(queue)))
		l.count = append(l.count, len(names))
		for _, k := range names {
			p := k
			if it.path != "" {
				p = it.path + "/" + k
			}
			queue = append(queue, item{n: it.n.kids[k], parent: index.ID(i), name: k, path: p})
		}
	}
	for id := range l.entries {
		if l.entries[id].Type != index.TypeHardlink {
			continue
		}
		l.hardlinks = append(l.hardlinks, index.ID(id))
		if t, ok := l.lookupPath(l.links[id]); ok {
			l.entries[id].Link = t
		}
	}
	return l
}

func (l *fakeLayer) lookupPath(p string) (index.ID, bool) {
	if p == "" {
		return 0, false
	}
	cur := index.ID(0)
	for _, c := range strings.Split(p, "/") {
		id, ok := l.Lookup(cur, c)
		if !ok {
			return 0, false
		}
		cur = id
	}
	return cur, true
}

func (l *fakeLayer) Len() int                              { return len(l.entries) }
func (l *fakeLayer) Entry(id index.ID) index.Entry         { return l.entries[id] }
func (l *fakeLayer) Name(id index.ID) string               { return l.names[id] }
func (l *fakeLayer) LinkName(id index.ID) string           { return l.links[id] }
func (l *fakeLayer) Path(id index.ID) string               { return l.paths[id] }
func (l *fakeLayer) Xattrs(id index.ID) []index.Xattr      { return l.xattrs[id] }
func (l *fakeLayer) Hardlinks() []index.ID                 { return l.hardlinks }
func (l *fakeLayer) Children(dir index.ID) (index.ID, int) { return l.first[dir], l.count[dir] }

func (l *fakeLayer) Lookup(dir index.ID, name string) (index.ID, bool) {
	first, n := l.first[dir], l.count[dir]
	i, ok := slices.BinarySearch(l.names[first:int(first)+n], name)
	return first + index.ID(i), ok
}

func (l *fakeLayer) ReadAt(id index.ID, p []byte, off int64) (int, error) {
	d := l.data[id]
	if off < 0 {
		return 0, os.ErrInvalid
	}
	if off >= int64(len(d)) {
		return 0, io.EOF
	}
	n := copy(p, d[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (l *fakeLayer) FileRange(id index.ID) (*os.File, int64, bool) { return nil, 0, false }

// layersOf builds one fake layer per member list, bottom first.
func layersOf(stacks ...[]tartest.Member) []Layer {
	out := make([]Layer, len(stacks))
	for i, ms := range stacks {
		out[i] = newFakeLayer(ms...)
	}
	return out
}

// Package fakelayer is the in-memory overlay layer of the tests of overlay and of the packages over the
// view, with the random layer-stack generator and the means for a test to break a layer's contract one
// rule at a time.
package fakelayer

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/tartest"
)

// Layer is an in-memory layer table built from tartest members the way package index builds its
// tables: names normalised, implied parents added, duplicates resolved (last wins), children contiguous
// and sorted, hard links linked within the layer.
type Layer struct {
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

// fnode is a node of the tree a Layer is built from.
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

// New builds a layer table from members in tar order.
func New(members ...tartest.Member) *Layer {
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

	l := &Layer{}
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
		if t, ok := l.LookupPath(l.links[id]); ok {
			l.entries[id].Link = t
		}
	}
	return l
}

// LookupPath looks up a slash-separated path ("" is not found) from the root.
func (l *Layer) LookupPath(p string) (index.ID, bool) {
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

func (l *Layer) Len() int                              { return len(l.entries) }
func (l *Layer) Entry(id index.ID) index.Entry         { return l.entries[id] }
func (l *Layer) Name(id index.ID) string               { return l.names[id] }
func (l *Layer) LinkName(id index.ID) string           { return l.links[id] }
func (l *Layer) Path(id index.ID) string               { return l.paths[id] }
func (l *Layer) Xattrs(id index.ID) []index.Xattr      { return l.xattrs[id] }
func (l *Layer) Hardlinks() []index.ID                 { return l.hardlinks }
func (l *Layer) Children(dir index.ID) (index.ID, int) { return l.first[dir], l.count[dir] }

func (l *Layer) Lookup(dir index.ID, name string) (index.ID, bool) {
	first, n := l.first[dir], l.count[dir]
	i, ok := slices.BinarySearch(l.names[first:int(first)+n], name)
	return first + index.ID(i), ok
}

func (l *Layer) ReadAt(id index.ID, p []byte, off int64) (int, error) {
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

func (l *Layer) FileRange(id index.ID) (*os.File, int64, bool) { return nil, 0, false }

// Data returns the data of member id.
func (l *Layer) Data(id index.ID) []byte { return l.data[id] }

// Table is what Dump reads of a layer: the member-table methods of overlay.Layer, which fakes and
// *index.Layer have alike.
type Table interface {
	Len() int
	Entry(id index.ID) index.Entry
	Path(id index.ID) string
	LinkName(id index.ID) string
	Xattrs(id index.ID) []index.Xattr
}

// Dump describes layers for a failure message.
func Dump[L Table](layers []L) string {
	var b bytes.Buffer
	for li, l := range layers {
		fmt.Fprintf(&b, "  layer %d:\n", li)
		for id := 0; id < l.Len(); id++ {
			e := l.Entry(index.ID(id))
			fmt.Fprintf(&b, "    %d %q %v mode=%o", id, l.Path(index.ID(id)), e.Type, e.Mode)
			if e.Flags&index.FlagImplied != 0 {
				fmt.Fprint(&b, " implied")
			}
			if e.Type == index.TypeHardlink || e.Type == index.TypeSymlink {
				fmt.Fprintf(&b, " -> %q (link %d)", l.LinkName(index.ID(id)), int32(e.Link))
			}
			if e.Type == index.TypeChar {
				fmt.Fprintf(&b, " %d:%d", e.Devmajor, e.Devminor)
			}
			for _, x := range l.Xattrs(index.ID(id)) {
				fmt.Fprintf(&b, " %s=%s", x.Name, x.Value)
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// Chooser supplies the generator's decisions: a number in [0, n). A *rand.Rand is one.
type Chooser interface{ IntN(n int) int }

// NewRandChooser returns a Chooser taking its decisions from r.
func NewRandChooser(r *rand.Rand) Chooser { return r }

// ByteChooser takes decisions from fuzz bytes, one byte a decision; once they run out every decision
// is 0.
type ByteChooser struct {
	b []byte
	i int
}

// NewByteChooser returns a ByteChooser over b.
func NewByteChooser(b []byte) *ByteChooser { return &ByteChooser{b: b} }

func (c *ByteChooser) IntN(n int) int {
	if c.i >= len(c.b) {
		return 0
	}
	v := int(c.b[c.i])
	c.i++
	return v % n
}

var genNames = []string{"a", "b", "c"}

// GenPath makes a random path of min to 3 components over the generator's few names.
func GenPath(c Chooser, min int) string {
	depth := min + c.IntN(4-min)
	parts := make([]string, depth)
	for i := range parts {
		parts[i] = genNames[c.IntN(len(genNames))]
	}
	return strings.Join(parts, "/")
}

// GenStack makes a random layer stack with few names, so that paths collide across layers: files, dirs,
// symlinks, devices, hard links (also into AUFS .wh..wh.plnk), whiteouts of both styles, opaque markers
// of both styles, root members, eStargz metadata and type changes.
func GenStack(c Chooser) [][]tartest.Member {
	stacks := make([][]tartest.Member, 1+c.IntN(4))
	for li := range stacks {
		var ms []tartest.Member
		for n := c.IntN(10); n > 0; n-- {
			p := GenPath(c, 1)
			switch c.IntN(17) {
			case 0, 1:
				m := tartest.File(p, fmt.Sprintf("L%d:%s", li, p))
				m.Mode = []int64{0o644, 0o600, 0o4755}[c.IntN(3)]
				ms = append(ms, m)
			case 2, 3:
				m := tartest.Dir(p)
				m.Mode = []int64{0o755, 0o700, 0o1777}[c.IntN(3)]
				m.UID = c.IntN(3)
				ms = append(ms, m)
			case 4:
				ms = append(ms, tartest.Symlink(p, []string{"a", "../b", "/c/d"}[c.IntN(3)]))
			case 5, 6:
				target := GenPath(c, 1)
				if c.IntN(8) == 0 {
					target = []string{".wh..wh.dev", ".wh..wh.plnk/a"}[c.IntN(2)]
				}
				ms = append(ms, tartest.Hardlink(p, target))
			case 7, 8:
				dir := GenPath(c, 0)
				ms = append(ms, tartest.Whiteout(dir, genNames[c.IntN(len(genNames))]))
			case 9:
				if dir := GenPath(c, 0); dir != "" {
					ms = append(ms, tartest.Opaque(dir))
				} else {
					ms = append(ms, tartest.File(".wh..wh..opq", ""))
				}
			case 10:
				ms = append(ms, tartest.Member{Name: p, Type: tar.TypeChar})
			case 11:
				m := tartest.Dir(p)
				m.Xattrs = map[string]string{"trusted.overlay.opaque": "y"}
				ms = append(ms, m)
			case 12:
				m := tartest.File(p, "x")
				m.Xattrs = map[string]string{"user.k": p, "trusted.overlay.origin": "z"}
				ms = append(ms, m)
			case 13:
				name := genNames[c.IntN(len(genNames))]
				ms = append(ms, tartest.File(".wh..wh.plnk/"+name, "plnk"+name),
					tartest.Hardlink(p, ".wh..wh.plnk/"+name))
			case 14:
				m := tartest.Dir(".")
				m.Mode = 0o700
				if c.IntN(2) == 0 {
					m.Xattrs = map[string]string{"trusted.overlay.opaque": "y", "user.root": "r"}
				}
				ms = append(ms, m)
			case 15:
				ms = append(ms, tartest.File("stargz.index.json", "{}"), tartest.File(".prefetch.landmark", "l"))
			case 16:
				switch c.IntN(4) {
				case 0:
					ms = append(ms, tartest.Member{Name: p, Type: tar.TypeChar, Devmajor: 1, Devminor: 3})
				case 1:
					ms = append(ms, tartest.Member{Name: p, Type: tar.TypeFifo})
				case 2:
					ms = append(ms, tartest.Whiteout(GenPath(c, 0), ".wh.plnk"))
				default: // an AUFS name is metadata even when it looks like an overlay whiteout
					ms = append(ms, tartest.Member{Name: ".wh..wh.dev", Type: tar.TypeChar},
						tartest.Hardlink(p, ".wh..wh.dev"))
				}
			}
		}
		stacks[li] = ms
	}
	return stacks
}

// The methods below let a test break the layer's contract one rule at a time (overlay's contract
// checker must report each), or hand the view data a layer would not hold.

// EntrySlice returns the layer's entries themselves, for a test to corrupt.
func (l *Layer) EntrySlice() []index.Entry { return l.entries }

// DataSlice returns the layer's file data themselves, for a test to corrupt.
func (l *Layer) DataSlice() [][]byte { return l.data }

// SetName makes Name(id) return name, whatever Lookup and Path say.
func (l *Layer) SetName(id index.ID, name string) { l.names[id] = name }

// SetPath makes Path(id) return p.
func (l *Layer) SetPath(id index.ID, p string) { l.paths[id] = p }

// SetLinkName makes LinkName(id) return target.
func (l *Layer) SetLinkName(id index.ID, target string) { l.links[id] = target }

// SetHardlinks makes Hardlinks return ids.
func (l *Layer) SetHardlinks(ids []index.ID) { l.hardlinks = ids }

// SetChildren makes Children(dir) return the n entries from first.
func (l *Layer) SetChildren(dir, first index.ID, n int) { l.first[dir], l.count[dir] = first, n }

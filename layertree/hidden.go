package layertree

import (
	"strings"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/ovlfmt"
)

// marks is one layer's part of the hidden tree: two bits per entry, hidden (a whiteout or opaque
// directory of a higher layer deleted it) and onPath (a directory with a hidden entry below it).
type marks struct {
	hidden, onPath []uint64
}

func newMarks(n int) marks {
	w := (n + 63) / 64
	return marks{hidden: make([]uint64, w), onPath: make([]uint64, w)}
}

func bit(b []uint64, id index.ID) bool { return b != nil && b[id/64]&(1<<(id%64)) != 0 }
func set(b []uint64, id index.ID)      { b[id/64] |= 1 << (id % 64) }

// get reports whether entry id is part of the hidden tree.
func (m marks) get(id index.ID) bool {
	if m.hidden == nil || uint64(id) >= uint64(len(m.hidden))*64 {
		return false
	}
	return bit(m.hidden, id) || bit(m.onPath, id)
}

// any reports whether the layer lost anything.
func (m marks) any() bool { return m.onPath != nil && bit(m.onPath, 0) }

// marks returns layer L's hidden marks, computing every layer's at the first call.
func (t *View) marks(L int) marks {
	t.hiddenOnce.Do(t.computeHidden)
	return t.hidden[L]
}

// computeHidden finds every deletion marker of every layer (".wh.NAME", ".wh..wh..opq", a character
// device 0/0, a directory with trusted.overlay.opaque=y) and marks what it deletes in the layers below.
func (t *View) computeHidden() {
	t.hidden = make([]marks, len(t.layers))
	for M := 1; M < len(t.layers); M++ {
		l := t.layers[M]
		for id := index.ID(1); uint64(id) < uint64(l.Len()); id++ {
			e := l.Entry(id)
			name := l.Name(id)
			switch {
			case name == ovlfmt.OpaqueMarker:
				t.hideBelow(M, l.Path(e.Parent), true)
			case strings.HasPrefix(name, ovlfmt.MetaPrefix):
				// AUFS metadata (".wh..wh.plnk" and the like) deletes nothing.
			case strings.HasPrefix(name, ovlfmt.WhiteoutPrefix):
				t.hideBelow(M, join(l.Path(e.Parent), name[len(ovlfmt.WhiteoutPrefix):]), false)
			case isWhiteoutDev(e):
				t.hideBelow(M, l.Path(id), false)
			case e.Type == index.TypeDir && e.Flags&index.FlagXattrs != 0 && opaqueXattr(l.Xattrs(id)):
				t.hideBelow(M, l.Path(id), true)
			}
		}
		if e := l.Entry(0); e.Flags&index.FlagXattrs != 0 && opaqueXattr(l.Xattrs(0)) {
			t.hideBelow(M, "", true)
		}
	}
}

// hideBelow marks what a marker of layer M at path p deletes in every layer below M: the entry at p
// and its subtree, or with children only what is below p (an opaque directory).
func (t *View) hideBelow(M int, p string, children bool) {
	for N := 0; N < M; N++ {
		l := t.layers[N]
		id, ok := lookupPath(l, p)
		if !ok {
			continue
		}
		if !children {
			if id != 0 {
				t.hideSubtree(N, id)
			}
			continue
		}
		if l.Entry(id).Type != index.TypeDir {
			continue
		}
		first, cnt := l.Children(id)
		for c := first; c < first+index.ID(cnt); c++ {
			t.hideSubtree(N, c)
		}
	}
}

// hideSubtree marks entry id of layer N and everything below it hidden, except deletion markers (they
// are not files), and its parents as leading to hidden entries.
func (t *View) hideSubtree(N int, id index.ID) {
	l := t.layers[N]
	if isMarker(l.Name(id), l.Entry(id)) {
		return
	}
	m := &t.hidden[N]
	if m.hidden == nil {
		*m = newMarks(l.Len())
	}
	if bit(m.hidden, id) {
		return
	}
	for p := l.Entry(id).Parent; ; p = l.Entry(p).Parent {
		if bit(m.onPath, p) {
			break
		}
		set(m.onPath, p)
		if p == 0 {
			break
		}
	}
	todo := []index.ID{id}
	for len(todo) > 0 {
		cur := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if bit(m.hidden, cur) || isMarker(l.Name(cur), l.Entry(cur)) {
			continue
		}
		set(m.hidden, cur)
		if l.Entry(cur).Type == index.TypeDir {
			first, cnt := l.Children(cur)
			for c := first; c < first+index.ID(cnt); c++ {
				todo = append(todo, c)
			}
		}
	}
}

// isMarker reports whether an entry is a deletion marker or AUFS metadata rather than a file.
func isMarker(name string, e index.Entry) bool {
	return strings.HasPrefix(name, ovlfmt.WhiteoutPrefix) || isWhiteoutDev(e)
}

// isWhiteoutDev reports whether e is an overlayfs-style whiteout: a character device 0/0.
func isWhiteoutDev(e index.Entry) bool {
	return e.Type == index.TypeChar && e.Devmajor == 0 && e.Devminor == 0
}

// opaqueXattr reports whether xs mark a directory opaque (trusted.overlay.opaque=y).
func opaqueXattr(xs []index.Xattr) bool {
	for _, x := range xs {
		if x.Name == "trusted."+ovlfmt.Opaque && string(x.Value) == "y" {
			return true
		}
	}
	return false
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

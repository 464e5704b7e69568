package overlay

import (
	"sort"
	"strings"

	"github.com/imgfs/imgfs/index"
)

// Dir is a snapshot of a merged directory listing, sorted bytewise by name, without "." and "..". It
// holds 16 bytes per entry of the layers (no strings), plus the names of the upper directory's entries,
// and is safe for concurrent use.
type Dir struct {
	v     *View
	items []dirItem
	names []string // names of the entries that come from the upper directory
}

// upperItem is the dirItem.layer of an entry of the upper directory; its id indexes Dir.names.
const upperItem = 0xFFFF

// dirItem is one entry of a Dir: the layer entry that gave the name (or the upper directory's name), and
// the node it shows.
type dirItem struct {
	node  Node
	id    index.ID
	layer uint16
	typ   index.Type
}

// Len returns the number of entries.
func (d *Dir) Len() int { return len(d.items) }

// Entry returns entry i, 0 <= i < Len(); out of range it returns the zero DirEntry.
func (d *Dir) Entry(i int) DirEntry {
	if i < 0 || i >= len(d.items) {
		return DirEntry{}
	}
	it := d.items[i]
	return DirEntry{Name: d.name(it), Node: it.node, Type: it.typ}
}

// name returns the name of item it.
func (d *Dir) name(it dirItem) string {
	if it.layer == upperItem {
		return d.names[it.id]
	}
	return d.v.layers[it.layer].Name(it.id)
}

// cursor walks one layer's sorted children of a directory during the merge.
type cursor struct {
	name string
	pos  index.ID // current child
	end  index.ID // one past the last child
	fi   int      // position of the layer's frame in the directory stack (0 = topmost)
}

// occurrence is one layer's entry for the name being merged.
type occurrence struct {
	fi int
	id index.ID
}

// ReadDir returns a snapshot of the merged listing of directory n: a k-way merge of the sorted child
// ranges of the k layers of its stack, O(n log k), with whiteouts, opaque markers and hard links applied.
func (v *View) ReadDir(n Node) (*Dir, error) {
	if v.up != nil {
		return v.up.readDir(n)
	}
	st, err := v.dirStack(n)
	if err != nil {
		return nil, err
	}
	return &Dir{v: v, items: v.mergeStack(st)}, nil
}

// mergeStack returns the merged listing of directory stack st, sorted by name.
func (v *View) mergeStack(st stack) []dirItem {
	if len(st) == 0 {
		return nil // the root of an image without layers
	}
	// Whiteouts (".wh.X") of every layer but the lowest, which has nothing below it in the stack: a
	// whiteout in frame i hides X in frames below i. They are contiguous in each sorted child range.
	var wh map[string]int
	for i, f := range st[:len(st)-1] {
		l := v.layers[f.layer]
		first, cnt := l.Children(f.id)
		j := sort.Search(cnt, func(j int) bool { return l.Name(first+index.ID(j)) >= whPrefix })
		for ; j < cnt; j++ {
			name := l.Name(first + index.ID(j))
			if !strings.HasPrefix(name, whPrefix) {
				break
			}
			if strings.HasPrefix(name, aufsPrefix) {
				continue // the opaque marker (already in the stack) or AUFS metadata
			}
			if wh == nil {
				wh = map[string]int{}
			}
			if _, ok := wh[name[len(whPrefix):]]; !ok {
				wh[name[len(whPrefix):]] = i
			}
		}
	}

	total := 0
	cs := make([]cursor, 0, len(st))
	for i, f := range st {
		first, cnt := v.layers[f.layer].Children(f.id)
		if cnt <= 0 {
			continue
		}
		total += cnt
		cs = append(cs, cursor{
			name: v.layers[f.layer].Name(first), pos: first, end: first + index.ID(cnt), fi: i,
		})
	}
	items := make([]dirItem, 0, total)
	h := mergeHeap(cs)
	h.init()
	occ := make([]occurrence, 0, len(st))
	for len(h) > 0 {
		occ = occ[:0]
		name := h[0].name
		for len(h) > 0 && h[0].name == name {
			c := &h[0]
			occ = append(occ, occurrence{c.fi, c.pos})
			c.pos++
			if c.pos < c.end {
				c.name = v.layers[st[c.fi].layer].Name(c.pos)
				h.fix0()
			} else {
				h.pop0()
			}
		}
		if it, ok := v.merged(st, name, occ, wh); ok {
			items = append(items, it)
		}
	}
	return items
}

// merged decides what name shows in the merged directory st, given its occurrences (topmost first) and
// the directory's whiteouts.
func (v *View) merged(st stack, name string, occ []occurrence, wh map[string]int) (dirItem, bool) {
	if strings.HasPrefix(name, whPrefix) || len(name) > MaxName {
		return dirItem{}, false
	}
	below := len(st) // occurrences in frames after this one are whited out
	if w, ok := wh[name]; ok {
		below = w
	}
	k := 0
	for _, o := range occ {
		if o.fi <= below && !v.hidden(st[o.fi], name) {
			occ[k] = o
			k++
		}
	}
	occ = occ[:k]
	if len(occ) == 0 {
		return dirItem{}, false
	}
	top := frame{st[occ[0].fi].layer, occ[0].id}
	e := v.layers[top.layer].Entry(top.id)
	it := dirItem{node: top.node(), id: top.id, layer: uint16(top.layer), typ: e.Type}
	switch {
	case isWhiteoutDev(e):
		return dirItem{}, false
	case e.Type == index.TypeHardlink:
		t, ok := v.linkTarget(top)
		if !ok {
			return dirItem{}, false
		}
		it.node, it.typ = t.node(), v.layers[t.layer].Entry(t.id).Type
	case e.Type == index.TypeDir:
		// The owner is the topmost entry that is not implied, among the directory entries down to the
		// first non-directory or opaque directory.
		owner := top
		implied := e.Flags&index.FlagImplied != 0
		for i, o := range occ {
			g := frame{st[o.fi].layer, o.id}
			ge := e
			if i > 0 {
				ge = v.layers[g.layer].Entry(g.id)
				if ge.Type != index.TypeDir {
					break
				}
			}
			if implied && ge.Flags&index.FlagImplied == 0 {
				owner, implied = g, false
			}
			// A whiteout in g's layer also ends the stack, but occ holds nothing below one already.
			if !implied || i+1 == len(occ) || v.opaque(g, ge) {
				break
			}
		}
		it.node = owner.node()
	}
	return it, true
}

// mergeHeap is a binary min-heap of cursors ordered by name, then by stack position (topmost first).
type mergeHeap []cursor

func (h mergeHeap) less(i, j int) bool {
	if h[i].name != h[j].name {
		return h[i].name < h[j].name
	}
	return h[i].fi < h[j].fi
}

func (h mergeHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h mergeHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// fix0 restores the heap after the minimum's key grew.
func (h mergeHeap) fix0() { h.down(0) }

// pop0 removes the minimum.
func (h *mergeHeap) pop0() {
	old := *h
	n := len(old) - 1
	old[0] = old[n]
	*h = old[:n]
	h.down(0)
}

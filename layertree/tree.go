package layertree

import (
	"bytes"
	"cmp"
	"os"
	"slices"
	"strings"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

// Modes of the fixed directories and files: readable by all, writable by none.
const (
	metaDirMode  = 0o555
	metaFileMode = 0o444
)

// maxLinkChain bounds the hard links followed to find a target (a table may hold a cycle).
const maxLinkChain = 64

// linkCount is the number of hard links of a layer that resolve to one of its entries.
type linkCount struct {
	layer uint16
	id    index.ID
	n     uint32
}

func cmpLink(a linkCount, layer uint16, id index.ID) int {
	if c := cmp.Compare(a.layer, layer); c != 0 {
		return c
	}
	return cmp.Compare(a.id, id)
}

// countLinks counts, for every entry that hard links of its own layer name, how many do.
func (t *View) countLinks() {
	var all []linkCount
	for L, l := range t.layers {
		for _, h := range l.Hardlinks() {
			if id, ok := t.inLayerTarget(l, h); ok {
				all = append(all, linkCount{layer: uint16(L), id: id, n: 1})
			}
		}
	}
	slices.SortFunc(all, func(a, b linkCount) int { return cmpLink(a, b.layer, b.id) })
	for _, c := range all {
		if k := len(t.links); k > 0 && t.links[k-1].layer == c.layer && t.links[k-1].id == c.id {
			t.links[k-1].n++
			continue
		}
		t.links = append(t.links, c)
	}
}

// nlink returns the number of names entry id of layer L has in its layer.
func (t *View) nlink(L int, id index.ID) uint32 {
	i, ok := slices.BinarySearchFunc(t.links, linkCount{}, func(a, _ linkCount) int { return cmpLink(a, uint16(L), id) })
	if !ok {
		return 1
	}
	return 1 + t.links[i].n
}

// inLayerTarget follows hard link h of layer l to an entry of l that is not a hard link; ok is false
// when the chain leaves the layer, loops or ends at a directory.
func (t *View) inLayerTarget(l overlay.Layer, h index.ID) (index.ID, bool) {
	id := h
	for range maxLinkChain {
		e := l.Entry(id)
		switch e.Type {
		case index.TypeHardlink:
			if e.Link == index.NoID || uint64(e.Link) >= uint64(l.Len()) {
				return 0, false
			}
			id = e.Link
			continue
		case index.TypeDir:
			return 0, false
		}
		return id, true
	}
	return 0, false
}

// resolve returns the node and type that entry id of layer L shows in part k: itself, or for a hard
// link its target (see the package documentation); ok is false for a link that resolves to nothing.
func (t *View) resolve(k kind, L int, id index.ID) (overlay.Node, index.Type, bool) {
	l := t.layers[L]
	e := l.Entry(id)
	if e.Type != index.TypeHardlink {
		return node(k, L, id), e.Type, true
	}
	if tid, ok := t.inLayerTarget(l, id); ok {
		return node(k, L, tid), l.Entry(tid).Type, true
	}
	// The chain leaves the layer: the topmost member of a lower layer at the last link's target path.
	cur := id
	for range maxLinkChain {
		ce := l.Entry(cur)
		if ce.Type != index.TypeHardlink || ce.Link == index.NoID {
			break
		}
		cur = ce.Link
	}
	if ce := l.Entry(cur); ce.Type != index.TypeHardlink || ce.Link != index.NoID {
		return 0, 0, false // a loop or a directory inside the layer
	}
	target := l.LinkName(cur)
	for lower := L - 1; lower >= 0; lower-- {
		lid, ok := lookupPath(t.layers[lower], target)
		if !ok {
			continue
		}
		if t.layers[lower].Entry(lid).Type == index.TypeDir {
			return 0, 0, false
		}
		return t.resolve(kindLayer, lower, lid)
	}
	return 0, 0, false
}

// lookupPath returns the entry of l at path p ("a/b/c"; "" is the root).
func lookupPath(l overlay.Layer, p string) (index.ID, bool) {
	id := index.ID(0)
	for p != "" {
		var name string
		name, p, _ = strings.Cut(p, "/")
		if name == "" {
			continue
		}
		next, ok := l.Lookup(id, name)
		if !ok {
			return 0, false
		}
		id = next
	}
	return id, true
}

// validName reports whether name can be listed and looked up: one component that Linux can hold.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && len(name) <= overlay.MaxName && !strings.ContainsAny(name, "/\x00")
}

// entry returns layer L's entry id of part k, checking that the node names one.
func (t *View) entry(k kind, L int, id index.ID) (overlay.Layer, index.Entry, error) {
	if k != kindLayer && k != kindHidden || L >= len(t.layers) {
		return nil, index.Entry{}, overlay.ErrInvalid
	}
	l := t.layers[L]
	if uint64(id) >= uint64(l.Len()) {
		return nil, index.Entry{}, overlay.ErrInvalid
	}
	return l, l.Entry(id), nil
}

// shown reports whether entry id of layer L is part of part k of the tree.
func (t *View) shown(k kind, L int, id index.ID) bool {
	if k == kindHidden {
		m := t.marks(L)
		return m.get(id)
	}
	return true
}

// treeAttr returns the attributes of tree node n.
func (t *View) treeAttr(n overlay.Node, k kind, L int, id index.ID) (overlay.Attr, error) {
	if !t.tree {
		return overlay.Attr{}, overlay.ErrInvalid
	}
	if k == kindMeta {
		return t.metaAttr(n, id)
	}
	l, e, err := t.entry(k, L, id)
	if err != nil {
		return overlay.Attr{}, err
	}
	if e.Type == index.TypeHardlink {
		return overlay.Attr{}, overlay.ErrInvalid // the node of a link is its target's
	}
	a := overlay.Attr{Node: n, Type: e.Type, Mode: e.Mode & 0o7777, Nlink: 1, UID: e.UID, GID: e.GID,
		MtimeSec: e.MtimeSec, MtimeNsec: e.MtimeNsec, Layer: L}
	switch e.Type {
	case index.TypeDir:
		if e.Flags&index.FlagImplied != 0 {
			a.Mode, a.UID, a.GID, a.MtimeSec, a.MtimeNsec = 0o755, 0, 0, 0, 0
		}
		a.Nlink = 2
		first, cnt := l.Children(id)
		for c := first; c < first+index.ID(cnt); c++ {
			if l.Entry(c).Type == index.TypeDir && validName(l.Name(c)) && t.shown(k, L, c) {
				a.Nlink++
			}
		}
	case index.TypeRegular:
		a.Size, a.Blocks = e.Size, overlay.MemberBlocks(l, id)
		a.Nlink = t.nlink(L, id)
	case index.TypeSymlink:
		a.Mode, a.Size = 0o777, int64(len(l.LinkName(id)))
		a.Nlink = t.nlink(L, id)
	case index.TypeChar, index.TypeBlock:
		a.Devmajor, a.Devminor = e.Devmajor, e.Devminor
		a.Nlink = t.nlink(L, id)
	default:
		a.Nlink = t.nlink(L, id)
	}
	return a, nil
}

// treeLookup returns the attributes of the entry called name in tree directory (k, L, id).
func (t *View) treeLookup(k kind, L int, id index.ID, name string) (overlay.Attr, error) {
	if !t.tree {
		return overlay.Attr{}, overlay.ErrInvalid
	}
	if !validName(name) {
		if len(name) > overlay.MaxName {
			return overlay.Attr{}, overlay.ErrNameTooLong
		}
		return overlay.Attr{}, overlay.ErrInvalid
	}
	if k == kindMeta {
		return t.metaLookup(id, name)
	}
	l, e, err := t.entry(k, L, id)
	if err != nil {
		return overlay.Attr{}, err
	}
	if e.Type != index.TypeDir {
		return overlay.Attr{}, overlay.ErrNotDir
	}
	c, ok := l.Lookup(id, name)
	if !ok || !t.shown(k, L, c) {
		return overlay.Attr{}, overlay.ErrNotExist
	}
	n, _, ok := t.resolve(k, L, c)
	if !ok {
		return overlay.Attr{}, overlay.ErrNotExist
	}
	return t.Attr(n)
}

// treeReadDir returns the listing of tree directory (k, L, id).
func (t *View) treeReadDir(k kind, L int, id index.ID) (*Dir, error) {
	if !t.tree {
		return nil, overlay.ErrInvalid
	}
	if k == kindMeta {
		return t.metaReadDir(id)
	}
	l, e, err := t.entry(k, L, id)
	if err != nil {
		return nil, err
	}
	if e.Type != index.TypeDir {
		return nil, overlay.ErrNotDir
	}
	d := &Dir{t: t, kind: k, layer: L, ids: []index.ID{}}
	first, cnt := l.Children(id)
	for c := first; c < first+index.ID(cnt); c++ {
		if !validName(l.Name(c)) || !t.shown(k, L, c) {
			continue
		}
		if _, _, ok := t.resolve(k, L, c); !ok {
			continue
		}
		d.ids = append(d.ids, c)
	}
	return d, nil
}

// dirEntry returns the listing entry of child id of a layer directory.
func (t *View) dirEntry(k kind, L int, id index.ID) overlay.DirEntry {
	n, typ, _ := t.resolve(k, L, id)
	return overlay.DirEntry{Name: t.layers[L].Name(id), Node: n, Type: typ}
}

// treeReadlink returns the target of tree symlink (k, L, id).
func (t *View) treeReadlink(k kind, L int, id index.ID) (string, error) {
	if !t.tree || k == kindMeta {
		return "", overlay.ErrInvalid
	}
	l, e, err := t.entry(k, L, id)
	if err != nil {
		return "", err
	}
	if e.Type != index.TypeSymlink {
		return "", overlay.ErrInvalid
	}
	target := l.LinkName(id)
	if len(target) > overlay.MaxLinkTarget {
		return "", overlay.ErrNameTooLong
	}
	return target, nil
}

// treeXattrs returns the member's own extended attributes, verbatim.
func (t *View) treeXattrs(k kind, L int, id index.ID) ([]index.Xattr, error) {
	if !t.tree {
		return nil, overlay.ErrInvalid
	}
	if k == kindMeta {
		return nil, nil
	}
	l, e, err := t.entry(k, L, id)
	if err != nil {
		return nil, err
	}
	if e.Flags&index.FlagXattrs == 0 || e.Flags&index.FlagImplied != 0 {
		return nil, nil
	}
	return l.Xattrs(id), nil
}

// treeOpen opens tree file (k, L, id).
func (t *View) treeOpen(k kind, L int, id index.ID) (overlay.File, error) {
	if !t.tree {
		return nil, overlay.ErrInvalid
	}
	if k == kindMeta {
		b, ok := t.metaData(id)
		if !ok {
			if id < metaCount {
				return nil, overlay.ErrIsDir
			}
			return nil, overlay.ErrInvalid
		}
		return &bytesFile{r: bytes.NewReader(b)}, nil
	}
	l, e, err := t.entry(k, L, id)
	if err != nil {
		return nil, err
	}
	switch e.Type {
	case index.TypeRegular:
		return overlay.MemberFile(l, id), nil
	case index.TypeDir:
		return nil, overlay.ErrIsDir
	}
	return nil, overlay.ErrInvalid
}

// bytesFile is an open image file.
type bytesFile struct{ r *bytes.Reader }

func (f *bytesFile) ReadAt(p []byte, off int64) (int, error) { return f.r.ReadAt(p, off) }
func (f *bytesFile) Size() int64                             { return f.r.Size() }
func (f *bytesFile) FileRange() (*os.File, int64, bool)      { return nil, 0, false }
func (f *bytesFile) Close() error                            { return nil }

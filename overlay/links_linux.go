package overlay

import (
	"cmp"
	"slices"
	"strings"

	"github.com/imgfs/imgfs/index"
)

// linkRec is one hard link entry and the entry it resolves to.
type linkRec struct {
	key    frame
	target frame
	ok     bool // false: the target could not be resolved and the link's name is removed from the view
}

// nlinkRec is the number of visible names of a node that has more than one.
type nlinkRec struct {
	node Node
	n    uint32
}

func cmpFrame(a, b frame) int {
	if c := cmp.Compare(a.layer, b.layer); c != 0 {
		return c
	}
	return cmp.Compare(a.id, b.id)
}

// linkIndex returns the position of hard link entry f in v.links.
func (v *View) linkIndex(f frame) (int, bool) {
	return slices.BinarySearchFunc(v.links, f, func(r linkRec, f frame) int { return cmpFrame(r.key, f) })
}

// linkTarget returns the entry that hard link entry f resolves to.
func (v *View) linkTarget(f frame) (frame, bool) {
	i, ok := v.linkIndex(f)
	if !ok {
		return frame{}, false
	}
	return v.links[i].target, v.links[i].ok
}

// nlink returns the number of visible names of non-directory node n.
func (v *View) nlink(n Node) uint32 {
	if len(v.nlinks) == 0 {
		return 1
	}
	i, ok := slices.BinarySearchFunc(v.nlinks, n, func(r nlinkRec, n Node) int { return cmp.Compare(r.node, n) })
	if !ok {
		return 1
	}
	return v.nlinks[i].n
}

// Link resolution states.
const (
	linkPending = iota
	linkBusy
	linkDone
)

// maxLinkWarnings caps the warnings New logs about unresolvable hard links.
const maxLinkWarnings = 16

// buildLinks resolves every hard link of every layer, bottom layer first, and counts the visible names of
// every node that hard links point to.
//
// A hard link in layer L resolves to the entry its target path names in the merged view of layers 0..L:
// Entry.Link when the target is in L itself, else the path looked up in the view of layers 0..L-1 (AUFS
// ".wh..wh.*" names allowed, so that links into ".wh..wh.plnk" resolve). A target that is itself a hard
// link is followed. A link whose target is missing, a directory, a whiteout or part of a cycle is
// unresolvable: its name is removed from the view, as if an extractor had removed the old path and then
// failed to link.
func (v *View) buildLinks() {
	var n int
	for _, l := range v.layers {
		n += len(l.Hardlinks())
	}
	if n == 0 {
		return
	}
	recs := make([]linkRec, 0, n)
	for i, l := range v.layers {
		for _, id := range l.Hardlinks() {
			if uint64(id) < uint64(l.Len()) {
				recs = append(recs, linkRec{key: frame{uint32(i), id}})
			}
		}
	}
	slices.SortFunc(recs, func(a, b linkRec) int { return cmpFrame(a.key, b.key) })
	recs = slices.CompactFunc(recs, func(a, b linkRec) bool { return a.key == b.key })
	v.links = recs

	w := &walker{v: v, memo: map[walkKey]stack{}}
	state := make([]uint8, len(recs))
	for i := range recs {
		v.resolveLink(i, state, w)
	}

	last := len(v.layers) - 1
	counts := map[frame]uint32{}
	warned, unresolved := 0, 0
	for _, r := range recs {
		p := v.layers[r.key.layer].Path(r.key.id)
		got, ok := w.resolve(last, p, false)
		if !ok || got.top != r.key {
			continue // a higher layer hides this name
		}
		if !r.ok {
			unresolved++
			if warned < maxLinkWarnings {
				warned++
				v.log.Warn("overlay: hard link target not found, link hidden",
					"layer", r.key.layer, "path", p, "target", v.layers[r.key.layer].LinkName(r.key.id))
			}
			continue
		}
		counts[r.target]++
	}
	if unresolved > warned {
		v.log.Warn("overlay: more hard links hidden", "count", unresolved-warned)
	}
	for t := range counts {
		got, ok := w.resolve(last, v.layers[t.layer].Path(t.id), false)
		if ok && got.top == t {
			counts[t]++
		}
	}
	for t, c := range counts {
		if c > 1 {
			v.nlinks = append(v.nlinks, nlinkRec{node: t.node(), n: c})
		}
	}
	slices.SortFunc(v.nlinks, func(a, b nlinkRec) int { return cmp.Compare(a.node, b.node) })
}

// resolveLink resolves v.links[i], following chains of hard links iteratively; a cycle leaves every link
// on it unresolved.
func (v *View) resolveLink(i int, state []uint8, w *walker) {
	var chain []int
	var res frame
	var ok bool
	for cur := i; ; {
		if state[cur] == linkDone {
			res, ok = v.links[cur].target, v.links[cur].ok
			break
		}
		if state[cur] == linkBusy {
			break // a cycle
		}
		state[cur] = linkBusy
		chain = append(chain, cur)
		f := v.links[cur].key
		l := v.layers[f.layer]
		e := l.Entry(f.id)
		if e.Type != index.TypeHardlink {
			break
		}
		var t frame
		var te index.Entry
		got := false
		if e.Link != index.NoID {
			if uint64(e.Link) < uint64(l.Len()) {
				t = frame{f.layer, e.Link}
				te = l.Entry(e.Link)
				got = v.reachable(t, te)
			}
		} else if f.layer > 0 {
			var r found
			r, got = w.resolve(int(f.layer)-1, l.LinkName(f.id), true)
			t, te = r.top, r.e
		}
		if !got || te.Type == index.TypeDir {
			break
		}
		if te.Type == index.TypeHardlink {
			j, found := v.linkIndex(t)
			if !found {
				break
			}
			cur = j
			continue
		}
		res, ok = t, true
		break
	}
	for _, c := range chain {
		v.links[c].target, v.links[c].ok = res, ok
		state[c] = linkDone
	}
}

// reachable reports whether entry t (metadata te) of a layer can be named by a hard link of the same
// layer: neither it nor a parent is a whiteout marker or hidden eStargz metadata. AUFS metadata names are
// allowed.
func (v *View) reachable(t frame, te index.Entry) bool {
	l := v.layers[t.layer]
	if t.id == 0 {
		return false
	}
	if isWhiteoutDev(te) && !isAUFS(l.Name(t.id)) {
		return false
	}
	cur, e := t.id, te
	for steps := 0; cur != 0; steps++ {
		name := l.Name(cur)
		if strings.HasPrefix(name, whPrefix) && !isAUFS(name) {
			return false
		}
		if e.Parent == 0 && v.hidden(frame{t.layer, 0}, name) {
			return false
		}
		if uint64(e.Parent) >= uint64(l.Len()) || steps > l.Len() {
			return false
		}
		cur = e.Parent
		e = l.Entry(cur)
	}
	return true
}

// walker resolves paths in the view of layers 0..top, remembering directory stacks while New runs.
type walker struct {
	v    *View
	memo map[walkKey]stack // nil value: not a visible directory
}

type walkKey struct {
	top  int
	dir  string
	aufs bool
}

// maxWalkMemo bounds the walker's memory; the memo starts afresh when it is full.
const maxWalkMemo = 1 << 14

// resolve finds path p (normalised, "a/b/c") in the view of layers 0..top.
func (w *walker) resolve(top int, p string, aufs bool) (found, bool) {
	if p == "" {
		return found{}, false
	}
	dir, name := "", p
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		dir, name = p[:i], p[i+1:]
	}
	st := w.dirStack(top, dir, aufs)
	if st == nil || !nameOK(name, aufs) {
		return found{}, false
	}
	return w.v.child(st, name, aufs)
}

// nameOK reports whether name may appear in a resolved path.
func nameOK(name string, aufs bool) bool {
	if name == "" || name == "." || name == ".." {
		return false
	}
	return !strings.HasPrefix(name, whPrefix) || aufs && isAUFS(name)
}

// dirStack returns the stack of directory path dir in the view of layers 0..top, nil when it is not a
// visible directory. It starts from the longest remembered prefix of dir and walks down iteratively, so
// that very deep paths cost neither recursion nor repeated work.
func (w *walker) dirStack(top int, dir string, aufs bool) stack {
	end := len(dir)
	s, ok := w.memo[walkKey{top, dir, aufs}]
	for !ok && end > 0 {
		end = max(strings.LastIndexByte(dir[:end], '/'), 0)
		s, ok = w.memo[walkKey{top, dir[:end], aufs}]
	}
	if !ok {
		s = w.v.rootStack(top)
		w.remember(walkKey{top, "", aufs}, s)
	}
	for end < len(dir) && s != nil {
		start := end
		if start > 0 {
			start++ // past the '/'
		}
		next := strings.IndexByte(dir[start:], '/')
		if next < 0 {
			next = len(dir)
		} else {
			next += start
		}
		var sub stack
		if name := dir[start:next]; nameOK(name, aufs) {
			if r, ok := w.v.child(s, name, aufs); ok {
				sub = r.dir
			}
		}
		s, end = sub, next
		w.remember(walkKey{top, dir[:end], aufs}, s)
	}
	return s
}

func (w *walker) remember(k walkKey, s stack) {
	if len(w.memo) >= maxWalkMemo {
		clear(w.memo)
	}
	w.memo[k] = s
}

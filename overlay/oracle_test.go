package overlay

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/fakelayer"
)

// The oracle applies layers one after the other to an in-memory extracted filesystem, as umoci unpack
// does, without any of View's machinery: for each layer, hard links whose target is in a lower layer are
// resolved against the tree as it stands, then whiteouts delete paths, opaque markers empty directories
// (and reset their attributes: the directory counts as deleted and recreated), then every entry is
// extracted in path order. It is the independent reference the View is compared with.

type onode struct {
	dir     bool
	kids    map[string]*onode
	src     frame // directory: the entry that gave the attributes, unless implied
	implied bool  // directory: attributes are the implied defaults
	layers  int   // directory: how many layers have it since it was last made or emptied (opaque)
	ino     *oino // non-directory
}

type oino struct{ f frame }

func newODir() *onode { return &onode{dir: true, kids: map[string]*onode{}, implied: true} }

// oracle extracts layers, bottom first, and returns the root of the result.
func oracle(layers []Layer) *onode {
	root := newODir()
	for li, l := range layers {
		applyLayer(root, li, l)
	}
	return root
}

func oLookup(root *onode, comps []string) *onode {
	n := root
	for _, c := range comps {
		if n == nil || !n.dir {
			return nil
		}
		n = n.kids[c]
	}
	return n
}

func splitPath(p string) []string {
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

func isMarkerName(name string) bool {
	return strings.HasPrefix(name, ".wh.") && (!strings.HasPrefix(name, ".wh..wh.") || name == ".wh..wh..opq")
}

func stargzName(name string) bool {
	return name == "stargz.index.json" || name == ".prefetch.landmark" || name == ".no.prefetch.landmark"
}

func applyLayer(root *onode, li int, l Layer) {
	_, estargz := l.Lookup(0, "stargz.index.json")
	const (
		skip = iota
		add
	)
	class := make([]int, l.Len())
	var whiteouts, opaques [][]string
	for id := 1; id < l.Len(); id++ {
		comps := splitPath(l.Path(index.ID(id)))
		e := l.Entry(index.ID(id))
		bad := false
		for j, c := range comps[:len(comps)-1] {
			if isMarkerName(c) || j == 0 && estargz && stargzName(c) {
				bad = true
			}
		}
		if bad {
			continue
		}
		last := comps[len(comps)-1]
		parent := comps[:len(comps)-1]
		switch {
		case last == ".wh..wh..opq":
			opaques = append(opaques, parent)
		case strings.HasPrefix(last, ".wh..wh."):
			class[id] = add
		case strings.HasPrefix(last, ".wh."):
			if x := last[4:]; x != "" {
				whiteouts = append(whiteouts, append(slices.Clone(parent), x))
			}
		case len(comps) == 1 && estargz && stargzName(last):
		case e.Type == index.TypeChar && e.Devmajor == 0 && e.Devminor == 0:
			whiteouts = append(whiteouts, comps)
		default:
			class[id] = add
		}
		if class[id] == add && e.Type == index.TypeDir {
			for _, x := range l.Xattrs(index.ID(id)) {
				if x.Name == "trusted.overlay.opaque" && string(x.Value) == "y" {
					opaques = append(opaques, comps)
				}
			}
		}
	}
	if e := l.Entry(0); true {
		for _, x := range l.Xattrs(0) {
			if e.Type == index.TypeDir && x.Name == "trusted.overlay.opaque" && string(x.Value) == "y" {
				opaques = append(opaques, nil)
			}
		}
	}

	// Hard links to lower layers resolve against the tree before this layer.
	lower := map[index.ID]*oino{}
	for id := 1; id < l.Len(); id++ {
		e := l.Entry(index.ID(id))
		if class[id] == add && e.Type == index.TypeHardlink && e.Link == index.NoID {
			if t := oLookup(root, splitPath(l.LinkName(index.ID(id)))); t != nil && !t.dir {
				lower[index.ID(id)] = t.ino
			}
		}
	}
	for _, w := range whiteouts {
		if p := oLookup(root, w[:len(w)-1]); p != nil && p.dir {
			delete(p.kids, w[len(w)-1])
		}
	}
	for _, o := range opaques {
		if d := oLookup(root, o); d != nil && d.dir {
			d.kids = map[string]*onode{}
			d.implied = true
			d.layers = 0
		}
	}
	inos := map[index.ID]*oino{}
	for id := 1; id < l.Len(); id++ {
		t := l.Entry(index.ID(id)).Type
		if class[id] == add && t != index.TypeDir && t != index.TypeHardlink {
			inos[index.ID(id)] = &oino{frame{uint32(li), index.ID(id)}}
		}
	}
	var resolve func(id index.ID, seen map[index.ID]bool) *oino
	resolve = func(id index.ID, seen map[index.ID]bool) *oino {
		e := l.Entry(id)
		if e.Link == index.NoID {
			return lower[id]
		}
		t := e.Link
		if seen[t] || class[t] != add {
			return nil
		}
		seen[t] = true
		if l.Entry(t).Type == index.TypeHardlink {
			return resolve(t, seen)
		}
		return inos[t]
	}

	root.layers++
	if e := l.Entry(0); e.Type == index.TypeDir && e.Flags&index.FlagImplied == 0 {
		root.src, root.implied = frame{uint32(li), 0}, false
	}
	for id := 1; id < l.Len(); id++ {
		if class[id] != add {
			continue
		}
		comps := splitPath(l.Path(index.ID(id)))
		parent := oLookup(root, comps[:len(comps)-1])
		if parent == nil || !parent.dir {
			panic(fmt.Sprintf("oracle: parent of %q missing", l.Path(index.ID(id))))
		}
		name := comps[len(comps)-1]
		e := l.Entry(index.ID(id))
		switch e.Type {
		case index.TypeDir:
			implied := e.Flags&index.FlagImplied != 0
			if ex := parent.kids[name]; ex != nil && ex.dir {
				ex.layers++
				if !implied {
					ex.src, ex.implied = frame{uint32(li), index.ID(id)}, false
				}
			} else {
				n := newODir()
				n.src, n.implied, n.layers = frame{uint32(li), index.ID(id)}, implied, 1
				parent.kids[name] = n
			}
		case index.TypeHardlink:
			if t := resolve(index.ID(id), map[index.ID]bool{index.ID(id): true}); t != nil {
				parent.kids[name] = &onode{ino: t}
			} else {
				delete(parent.kids, name)
			}
		default:
			parent.kids[name] = &onode{ino: inos[index.ID(id)]}
		}
	}
}

// listing is the comparable form of a tree: one line of facts per path, hard-link groups named by their
// first path.
type listing map[string]string

func describe(layers []Layer, f frame, dir, implied bool, nlink int, group string) string {
	if dir && implied {
		return fmt.Sprintf("dir mode=755 uid=0 gid=0 mtime=0.0 layer=-1 nlink=%d xattrs=[]", nlink)
	}
	l := layers[f.layer]
	e := l.Entry(f.id)
	mode := e.Mode & 0o7777
	if e.Type == index.TypeSymlink {
		mode = 0o777 // Linux keeps no mode for symlinks
	}
	s := fmt.Sprintf("%v mode=%o uid=%d gid=%d mtime=%d.%d layer=%d nlink=%d",
		e.Type, mode, e.UID, e.GID, e.MtimeSec, e.MtimeNsec, f.layer, nlink)
	switch e.Type {
	case index.TypeRegular:
		data := make([]byte, e.Size)
		if _, err := l.ReadAt(f.id, data, 0); err != nil && err != io.EOF {
			s += " readerr=" + err.Error()
		}
		s += fmt.Sprintf(" size=%d data=%q", e.Size, data)
	case index.TypeSymlink:
		s += fmt.Sprintf(" size=%d link=%q", len(l.LinkName(f.id)), l.LinkName(f.id))
	case index.TypeChar, index.TypeBlock:
		s += fmt.Sprintf(" dev=%d:%d", e.Devmajor, e.Devminor)
	}
	var xs []string
	for _, x := range l.Xattrs(f.id) {
		if !strings.HasPrefix(x.Name, "trusted.overlay.") {
			xs = append(xs, x.Name+"="+string(x.Value))
		}
	}
	s += fmt.Sprintf(" xattrs=%v", xs)
	if group != "" {
		s += " group=" + group
	}
	return s
}

// oracleListing lists the visible part of an oracle tree (names starting with ".wh." are AUFS metadata
// kept only for resolving hard links).
func oracleListing(layers []Layer, root *onode) listing {
	out := listing{"": describe(layers, root.src, true, root.implied, oDirNlink(root), "")}
	names := map[*oino][]string{}
	var walk func(n *onode, p string)
	walk = func(n *onode, p string) {
		for name, c := range n.kids {
			if strings.HasPrefix(name, ".wh.") {
				continue
			}
			cp := join(p, name)
			if c.dir {
				out[cp] = describe(layers, c.src, true, c.implied, oDirNlink(c), "")
				walk(c, cp)
			} else {
				names[c.ino] = append(names[c.ino], cp)
			}
		}
	}
	walk(root, "")
	for ino, ps := range names {
		slices.Sort(ps)
		for _, p := range ps {
			out[p] = describe(layers, ino.f, false, false, len(ps), groupName(ps))
		}
	}
	return out
}

// oDirNlink is a directory's link count as overlayfs shows it over the extracted layers: that of the
// extracted directory (2 and one per subdirectory) when one layer alone made it, else 1 (merged).
func oDirNlink(n *onode) int {
	if n.layers != 1 {
		return 1
	}
	c := 2
	for name, k := range n.kids {
		if k.dir && !strings.HasPrefix(name, ".wh.") {
			c++
		}
	}
	return c
}

func groupName(ps []string) string {
	if len(ps) < 2 {
		return ""
	}
	return ps[0]
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// viewListing walks v through its API only, checking on the way that ReadDir, Lookup and Attr agree and
// that whiteout names cannot be looked up.
func viewListing(t testing.TB, v *View) listing {
	t.Helper()
	out := listing{}
	type leaf struct {
		a    Attr
		path string
	}
	var leaves []leaf
	names := map[Node][]string{}
	dirs := map[Node]string{}
	var walk func(n Node, p string, depth int)
	walk = func(n Node, p string, depth int) {
		if depth > 64 {
			t.Fatalf("%q: too deep", p)
		}
		d, err := v.ReadDir(n)
		if err != nil {
			t.Fatalf("readdir %q: %v", p, err)
		}
		for _, probe := range []string{".wh.a", ".wh..wh..opq", ".wh..wh.plnk"} {
			if _, err := v.Lookup(n, probe); !errors.Is(err, ErrNotExist) {
				t.Errorf("lookup %q in %q: %v, want ErrNotExist", probe, p, err)
			}
		}
		prev := ""
		for i := 0; i < d.Len(); i++ {
			de := d.Entry(i)
			if i > 0 && de.Name <= prev {
				t.Errorf("%q: %q listed after %q", p, de.Name, prev)
			}
			prev = de.Name
			cp := join(p, de.Name)
			a, err := v.Lookup(n, de.Name)
			if err != nil {
				t.Errorf("lookup %q: %v (listed by readdir)", cp, err)
				continue
			}
			if a.Node != de.Node || a.Type != de.Type {
				t.Errorf("%q: readdir says node %#x %v, lookup %#x %v", cp, de.Node, de.Type, a.Node, a.Type)
			}
			if a2, err := v.Attr(a.Node); err != nil || a2 != a {
				t.Errorf("%q: attr %+v, %v; lookup gave %+v", cp, a2, err, a)
			}
			if wantBlocks := (a.Size + 511) / 512; a.Type != index.TypeRegular && a.Blocks != 0 || a.Type == index.TypeRegular && a.Blocks != wantBlocks {
				t.Errorf("%q: blocks %d for size %d", cp, a.Blocks, a.Size)
			}
			if a.Type == index.TypeDir {
				if q, ok := dirs[a.Node]; ok {
					t.Errorf("%q and %q: same directory node %#x", q, cp, a.Node)
				}
				dirs[a.Node] = cp
				if vp, ok := v.Path(a.Node); !ok || vp != cp {
					t.Errorf("path of %q: %q, %v", cp, vp, ok)
				}
				out[cp] = viewDescribe(t, v, a, "")
				walk(a.Node, cp, depth+1)
			} else {
				names[a.Node] = append(names[a.Node], cp)
				leaves = append(leaves, leaf{a, cp})
			}
		}
	}
	ra, err := v.Attr(Root)
	if err != nil {
		t.Fatalf("attr root: %v", err)
	}
	out[""] = viewDescribe(t, v, ra, "")
	walk(Root, "", 0)
	for _, lf := range leaves {
		ps := names[lf.a.Node]
		slices.Sort(ps)
		out[lf.path] = viewDescribe(t, v, lf.a, groupName(ps))
	}
	return out
}

func viewDescribe(t testing.TB, v *View, a Attr, group string) string {
	t.Helper()
	s := fmt.Sprintf("%v mode=%o uid=%d gid=%d mtime=%d.%d layer=%d nlink=%d",
		a.Type, a.Mode, a.UID, a.GID, a.MtimeSec, a.MtimeNsec, a.Layer, a.Nlink)
	switch a.Type {
	case index.TypeRegular:
		f, err := v.Open(a.Node)
		if err != nil {
			t.Fatalf("open %#x: %v", a.Node, err)
		}
		if f.Size() != a.Size {
			t.Errorf("open %#x: size %d, attr %d", a.Node, f.Size(), a.Size)
		}
		data := make([]byte, a.Size)
		if _, err := f.ReadAt(data, 0); err != nil && err != io.EOF {
			s += " readerr=" + err.Error()
		}
		s += fmt.Sprintf(" size=%d data=%q", a.Size, data)
	case index.TypeSymlink:
		target, err := v.Readlink(a.Node)
		if err != nil {
			t.Errorf("readlink %#x: %v", a.Node, err)
		}
		s += fmt.Sprintf(" size=%d link=%q", a.Size, target)
	case index.TypeChar, index.TypeBlock:
		s += fmt.Sprintf(" dev=%d:%d", a.Devmajor, a.Devminor)
	}
	xs, err := v.Xattrs(a.Node)
	if err != nil {
		t.Errorf("xattrs %#x: %v", a.Node, err)
	}
	var strs []string
	for _, x := range xs {
		strs = append(strs, x.Name+"="+string(x.Value))
	}
	s += fmt.Sprintf(" xattrs=%v", strs)
	if group != "" {
		s += " group=" + group
	}
	return s
}

// diffListings returns the differences between want and got, sorted, at most max of them.
func diffListings(want, got listing, max int) []string {
	var out []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			out = append(out, fmt.Sprintf("missing %q: %s", p, w))
		} else if g != w {
			out = append(out, fmt.Sprintf("%q:\n\twant %s\n\tgot  %s", p, w, g))
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			out = append(out, fmt.Sprintf("extra %q: %s", p, g))
		}
	}
	slices.Sort(out)
	if len(out) > max {
		out = append(out[:max], fmt.Sprintf("... %d more", len(out)-max))
	}
	return out
}

// checkOracle builds a View of layers and fails the test where it differs from the oracle.
func checkOracle(t testing.TB, layers []Layer) {
	t.Helper()
	v, err := New(layers, Options{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	want := oracleListing(layers, oracle(layers))
	got := viewListing(t, v)
	if d := diffListings(want, got, 20); len(d) > 0 {
		t.Errorf("view differs from the oracle:\n%s\nlayers:\n%s", strings.Join(d, "\n"), fakelayer.Dump(layers))
	}
}

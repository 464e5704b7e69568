package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"runtime"
	"slices"
)

// ErrTableTooLarge means a layer has more entries or more name, xattr or sparse data than a table can
// address.
var ErrTableTooLarge = errors.New("index: layer too large for a table")

// Builder limits.
const (
	maxEntries    = 1<<32 - 2 // IDs are uint32 and NoID is reserved
	maxArena      = 1<<32 - 1 // arena offsets are uint32
	maxWarnings   = 50        // individual warnings logged per layer; the rest are counted
	linuxNameMax  = 255       // NAME_MAX: longer names cannot be shown by a Linux mount
	linuxPathMax  = 4096      // PATH_MAX: readlink cannot return a symlink target this long
	nodeChunkBits = 12        // nodes per chunk: 4096 (256 KiB)
	nameChunkBits = 20        // bytes per name chunk: 1 MiB
	noNode        = ^uint32(0)
)

// flagLinkTarget marks a build node that a hardlink of this layer points to. It is never written out.
const flagLinkTarget Flags = 1 << 15

// bnode is what the build keeps of a member in memory: 20 bytes, no pointers, so that a million of
// them cost 20 MB and nothing for the garbage collector to scan. The rest of its metadata (mode,
// owners, times, size, data offset, xattr and sparse offsets) goes to the spill file as a coldRec each
// time it is set; the last one written for a node is its metadata.
type bnode struct {
	parent  uint32
	nameOff uint32 // in the name arena; the link target follows the name
	nameLen uint16
	linkLen uint16
	typ     Type
	dead    bool // replaced by a later member; its record may still carry a hardlink's data
	flags   Flags
	link    uint32 // hardlink: target node or noNode
}

// builder turns the members of one tar stream into a tree numbered for the table, in one pass.
type builder struct {
	// coldWindow, when positive, replaces the package's coldWindow (tests write tables through
	// small windows).
	coldWindow int
	log        *slog.Logger
	seed       maphash.Seed
	nodes      [][]bnode // chunks of 1<<nodeChunkBits
	n          uint32    // nodes in use
	names      [][]byte  // chunks of 1<<nameChunkBits; a string never straddles chunks
	xattr      []byte    // xattr arena, table format
	spars      []byte    // sparse arena, table format
	spill      spill     // the nodes' cold metadata, in the order it was set

	// hash finds the node of (parent, name): open addressing, slot = tag<<32 | node+1 (0: empty), the
	// slot position taken from the tag's low bits.
	hash  []uint64
	nhash int

	// dirs caches the directory chain of the last member: component ends in dirPath and their nodes.
	dirPath  []byte
	dirEnds  []int
	dirNodes []uint32

	path, link []byte    // scratch
	warnings   int       // members dropped or altered
	warns      []Warning // the first maxWarnings of them, stored with the table
	dropped    int64
	members    int64
}

// newBuilder returns an empty builder whose spill file goes to tmpDir ("": the system's temporary
// directory). It must be closed.
func newBuilder(log *slog.Logger, tmpDir string) *builder {
	b := &builder{log: log, seed: maphash.MakeSeed(), hash: make([]uint64, 1<<12), spill: spill{dir: tmpDir}}
	root := b.alloc()
	*root = bnode{typ: TypeDir, flags: FlagImplied}
	return b
}

// close releases the spill file.
func (b *builder) close() { b.spill.close() }

func (b *builder) node(i uint32) *bnode {
	return &b.nodes[i>>nodeChunkBits][i&(1<<nodeChunkBits-1)]
}

// alloc appends a zero node and returns it; its index is b.n-1.
func (b *builder) alloc() *bnode {
	if int(b.n>>nodeChunkBits) == len(b.nodes) {
		b.nodes = append(b.nodes, make([]bnode, 1<<nodeChunkBits))
	}
	nd := b.node(b.n)
	b.n++
	return nd
}

// putStrings stores name followed by link in the name arena and returns the offset.
func (b *builder) putStrings(name, link []byte) (uint32, error) {
	need := len(name) + len(link)
	const chunk = 1 << nameChunkBits
	if len(b.names) == 0 || len(b.names[len(b.names)-1])+need > chunk {
		if uint64(len(b.names)+1)<<nameChunkBits > maxArena {
			return 0, fmt.Errorf("names: %w", ErrTableTooLarge)
		}
		b.names = append(b.names, make([]byte, 0, chunk))
	}
	last := len(b.names) - 1
	off := uint32(last)<<nameChunkBits | uint32(len(b.names[last]))
	b.names[last] = append(append(b.names[last], name...), link...)
	return off, nil
}

func (b *builder) strAt(off uint32, n int) []byte {
	if n == 0 {
		return nil // the root has no name, and the arena may be empty
	}
	c := b.names[off>>nameChunkBits]
	o := int(off & (1<<nameChunkBits - 1))
	return c[o : o+n]
}

func (b *builder) name(nd *bnode) []byte { return b.strAt(nd.nameOff, int(nd.nameLen)) }

func (b *builder) linkOf(nd *bnode) []byte {
	return b.strAt(nd.nameOff+uint32(nd.nameLen), int(nd.linkLen))
}

func (b *builder) hashOf(parent uint32, name []byte) uint32 {
	h := maphash.Bytes(b.seed, name)
	h ^= uint64(parent) * 0x9e3779b97f4a7c15
	h ^= h >> 31
	h *= 0xbf58476d1ce4e5b9
	return uint32(h >> 32)
}

// lookup returns the node of name in dir, or noNode, and the slot where it is or would go.
func (b *builder) lookup(dir uint32, name []byte) (uint32, int) {
	tag := b.hashOf(dir, name)
	mask := len(b.hash) - 1
	for i := int(tag) & mask; ; i = (i + 1) & mask {
		s := b.hash[i]
		if s == 0 {
			return noNode, i
		}
		if uint32(s>>32) == tag {
			idx := uint32(s) - 1
			nd := b.node(idx)
			if nd.parent == dir && bytes.Equal(b.name(nd), name) {
				return idx, i
			}
		}
	}
}

// insert records node idx as name in dir at the slot lookup returned.
func (b *builder) insert(slot int, dir uint32, name []byte, idx uint32) {
	b.hash[slot] = uint64(b.hashOf(dir, name))<<32 | uint64(idx+1)
	b.nhash++
	if b.nhash*4 >= len(b.hash)*3 {
		b.grow()
	}
}

func (b *builder) grow() {
	old := b.hash
	b.hash = make([]uint64, 2*len(old))
	mask := len(b.hash) - 1
	for _, s := range old {
		if s == 0 {
			continue
		}
		i := int(s>>32) & mask
		for b.hash[i] != 0 {
			i = (i + 1) & mask
		}
		b.hash[i] = s
	}
	collectBig(len(old) * 8)
}

// collectBig runs the garbage collector after a structure of size bytes was dropped, when that is
// big enough to matter: the builder's heap is nearly all live, so without this the next allocations
// would take new memory while the old block waits for a collection that the heap's growth triggers
// only much later, and the peak would hold both.
func collectBig(size int) {
	if size >= 2<<20 {
		runtime.GC()
	}
}

// warn records a dropped or altered member (args are key, value pairs); after maxWarnings it only
// counts. The warnings are stored with the table and logged each time it is opened, not here.
func (b *builder) warn(msg string, args ...any) {
	b.warnings++
	if b.warnings > maxWarnings {
		return
	}
	w := Warning{Msg: msg, Attrs: make([]string, 0, len(args))}
	for _, a := range args {
		w.Attrs = append(w.Attrs, clipWarning(fmt.Sprint(a)))
	}
	b.warns = append(b.warns, w)
}

// clipWarning shortens a warning value (a 64 KiB name, say) to what a log line can carry.
func clipWarning(s string) string {
	const max = 512
	if len(s) <= max {
		return s
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:max], len(s))
}

// cleanPath normalises a member name into dst: "./" and leading "/" stripped, "." and empty components
// dropped, ".." resolved lexically. It reports false when ".." would leave the root.
func cleanPath(dst, name []byte) ([]byte, bool) {
	dst = dst[:0]
	for len(name) > 0 {
		var comp []byte
		if i := bytes.IndexByte(name, '/'); i >= 0 {
			comp, name = name[:i], name[i+1:]
		} else {
			comp, name = name, nil
		}
		switch {
		case len(comp) == 0 || (len(comp) == 1 && comp[0] == '.'):
		case len(comp) == 2 && comp[0] == '.' && comp[1] == '.':
			if len(dst) == 0 {
				return dst, false
			}
			i := bytes.LastIndexByte(dst, '/')
			dst = dst[:max(i, 0)]
		default:
			if len(dst) > 0 {
				dst = append(dst, '/')
			}
			dst = append(dst, comp...)
		}
	}
	return dst, true
}

// resolveDir returns the node of directory path dir (normalised, "" for the root), creating implied
// directories. A non-directory of this layer in the way gives an *underNonDirError.
func (b *builder) resolveDir(dir []byte) (uint32, error) {
	// Reuse the longest cached prefix ending at a component boundary (linear in the path, however deep).
	common := 0
	for common < len(dir) && common < len(b.dirPath) && dir[common] == b.dirPath[common] {
		common++
	}
	k := 0
	for k < len(b.dirEnds) {
		end := b.dirEnds[k]
		if end > common || (end < len(dir) && dir[end] != '/') {
			break
		}
		k++
	}
	b.dirEnds, b.dirNodes = b.dirEnds[:k], b.dirNodes[:k]
	cur := uint32(0)
	start := 0
	if k > 0 {
		cur = b.dirNodes[k-1]
		start = b.dirEnds[k-1] + 1
	}
	b.dirPath = append(b.dirPath[:0], dir...)
	for start < len(dir) {
		end := bytes.IndexByte(dir[start:], '/')
		if end < 0 {
			end = len(dir)
		} else {
			end += start
		}
		comp := dir[start:end]
		idx, slot := b.lookup(cur, comp)
		switch {
		case idx == noNode:
			var err error
			if idx, err = b.newNode(slot, cur, comp, nil); err != nil {
				return 0, err
			}
			nd := b.node(idx)
			nd.typ, nd.flags = TypeDir, FlagImplied
		case b.node(idx).typ != TypeDir:
			// A member below a non-directory of this layer: extraction could not create it (the
			// parent is not a directory), so the non-directory stays and the member is dropped. This
			// is also what makes a whiteout under a path that became a file in the same layer (umoci
			// writes those) a no-op.
			b.dirEnds, b.dirNodes, b.dirPath = b.dirEnds[:0], b.dirNodes[:0], b.dirPath[:0]
			return 0, &underNonDirError{path: string(dir[:end]), typ: b.node(idx).typ}
		}
		b.dirEnds = append(b.dirEnds, end)
		b.dirNodes = append(b.dirNodes, idx)
		cur = idx
		start = end + 1
	}
	return cur, nil
}

// underNonDirError reports a member whose parent path is a non-directory of the same layer.
type underNonDirError struct {
	path string
	typ  Type
}

func (e *underNonDirError) Error() string {
	return fmt.Sprintf("%s is a %s, not a directory", e.path, e.typ)
}

// newNode allocates a node for name in dir at the hash slot lookup returned.
func (b *builder) newNode(slot int, dir uint32, name, link []byte) (uint32, error) {
	if b.n >= maxEntries {
		return 0, fmt.Errorf("%d entries: %w", b.n, ErrTableTooLarge)
	}
	off, err := b.putStrings(name, link)
	if err != nil {
		return 0, err
	}
	idx := b.n
	nd := b.alloc()
	nd.parent, nd.nameOff, nd.nameLen, nd.linkLen = dir, off, uint16(len(name)), uint16(len(link))
	b.insert(slot, dir, name, idx)
	return idx, nil
}

// replaceNode kills node old (its record stays for hardlinks that point to it, its children become
// unreachable) and gives its name to a new node.
func (b *builder) replaceNode(old uint32, slot int, dir uint32, name []byte) (uint32, error) {
	if b.n >= maxEntries {
		return 0, fmt.Errorf("%d entries: %w", b.n, ErrTableTooLarge)
	}
	o := b.node(old) // chunks never move: o stays valid across alloc
	o.dead = true
	idx := b.n
	nd := b.alloc()
	nd.parent, nd.nameOff, nd.nameLen = dir, o.nameOff, o.nameLen
	b.hash[slot] = uint64(b.hashOf(dir, name))<<32 | uint64(idx+1)
	// Cached directory chains may go through the old node.
	b.dirEnds, b.dirNodes = b.dirEnds[:0], b.dirNodes[:0]
	return idx, nil
}

// knownFlag reports whether a member's typeflag is one the scanner understands; the others are read
// as regular files.
func knownFlag(flag byte) bool {
	switch flag {
	case '0', '1', '2', '3', '4', '5', '6', '7', 'S', 'D':
		return true
	}
	return false
}

// add records one member.
func (b *builder) add(m *tarMember) error {
	b.members++
	if !knownFlag(m.Flag) {
		b.warn("index: unknown tar typeflag, member kept as a regular file", "name", string(m.Name),
			"typeflag", fmt.Sprintf("%q", m.Flag))
	}
	p, ok := cleanPath(b.path, m.Name)
	b.path = p
	if !ok {
		b.dropped++
		b.warn("index: dropping member outside the root", "name", string(m.Name))
		return nil
	}
	if len(p) == 0 {
		if m.Type != TypeDir {
			b.dropped++
			b.warn("index: dropping root member that is not a directory", "name", string(m.Name),
				"type", m.Type.String())
			return nil
		}
		return b.setAttrs(0, m)
	}
	var dir, base []byte
	if i := bytes.LastIndexByte(p, '/'); i >= 0 {
		dir, base = p[:i], p[i+1:]
	} else {
		base = p
	}
	b.checkLinuxLimits(p, m)
	parent, err := b.resolveDir(dir)
	if err != nil {
		var und *underNonDirError
		if errors.As(err, &und) {
			b.dropped++
			b.warn("index: dropping a member below a non-directory", "name", string(p), "parent", und.path,
				"parent type", und.typ.String())
			return nil
		}
		return err
	}

	link := m.LinkName
	target := noNode
	if m.Type == TypeHardlink {
		lp, ok := cleanPath(b.link, m.LinkName)
		b.link = lp
		if !ok {
			b.dropped++
			b.warn("index: dropping hardlink to a target outside the root", "name", string(p),
				"target", string(m.LinkName))
			return nil
		}
		link = lp
		if len(lp) == 0 {
			b.dropped++
			b.warn("index: dropping hardlink to a directory", "name", string(p), "target", "/")
			return nil
		}
		target = b.lookupPath(lp)
		if target != noNode {
			t := b.node(target)
			switch t.typ {
			case TypeDir:
				b.dropped++
				b.warn("index: dropping hardlink to a directory", "name", string(p), "target", string(lp))
				return nil
			case TypeHardlink:
				// Follow the chain: to the real file when it is in this layer, else to the lower path.
				if t.link != noNode {
					target = t.link
				} else {
					link = append(b.link[:0:0], b.linkOf(t)...)
					target = noNode
				}
			}
		}
	}

	idx, slot := b.lookup(parent, base)
	if target != noNode && idx == target {
		b.dropped++
		b.warn("index: dropping hardlink to itself", "name", string(p))
		return nil
	}
	var nd *bnode
	switch {
	case idx == noNode:
		if idx, err = b.newNode(slot, parent, base, link); err != nil {
			return err
		}
		nd = b.node(idx)
	default:
		old := b.node(idx)
		switch {
		case old.typ == TypeDir && m.Type == TypeDir:
			// A directory over a directory keeps its children.
		case old.typ == TypeDir || old.flags&flagLinkTarget != 0:
			// A non-directory over a directory drops the old subtree; a hardlink target keeps its
			// record so that the hardlinks made earlier keep their data.
			if idx, err = b.replaceNode(idx, slot, parent, base); err != nil {
				return err
			}
		}
		nd = b.node(idx)
		nameOff, nameLen := nd.nameOff, nd.nameLen
		if len(link) > 0 || nd.linkLen > 0 {
			// The link target follows the name in the arena: store both again.
			if nameOff, err = b.putStrings(base, link); err != nil {
				return err
			}
		}
		*nd = bnode{parent: parent, nameOff: nameOff, nameLen: nameLen, linkLen: uint16(len(link)),
			flags: nd.flags & flagLinkTarget}
	}
	nd.typ = m.Type
	if m.Type == TypeHardlink {
		nd.link = target
		if target != noNode {
			b.node(target).flags |= flagLinkTarget
		}
	}
	return b.setAttrs(idx, m)
}

// setAttrs records a member's metadata as that of node idx: its flags in the node, the rest in a
// coldRec appended to the spill file.
func (b *builder) setAttrs(idx uint32, m *tarMember) error {
	nd := b.node(idx)
	nd.flags &= flagLinkTarget
	c := cold{mode: m.Mode, uid: m.UID, gid: m.GID, sec: m.MtimeSec, nsec: m.MtimeNsec}
	switch m.Type {
	case TypeRegular:
		c.size = m.Size
		c.x = uint64(m.Offset)
		if m.Sparse != nil {
			off, err := b.putSparse(m.Sparse)
			if err != nil {
				return err
			}
			nd.flags |= FlagSparse
			c.sparseOff = off
		}
	case TypeChar, TypeBlock:
		c.x = uint64(m.Devmajor) | uint64(m.Devminor)<<32
	}
	if len(m.Xattrs) > 0 {
		off, err := b.putXattrs(m.Xattrs)
		if err != nil {
			return err
		}
		nd.flags |= FlagXattrs
		c.xattrOff = off
	}
	return b.spill.put(idx, &c)
}

// checkLinuxLimits warns about a member that a Linux mount cannot show as it is: a path component
// longer than NAME_MAX (the member is kept in the table; the mount leaves it out) or a symlink target
// of PATH_MAX bytes or more (readlink fails). A whiteout of a name of up to NAME_MAX bytes is longer
// than that itself (".wh." comes first) and is not warned about.
func (b *builder) checkLinuxLimits(p []byte, m *tarMember) {
	if len(p) > linuxNameMax {
		for rest := p; len(rest) > 0; {
			comp := rest
			if i := bytes.IndexByte(rest, '/'); i >= 0 {
				comp, rest = rest[:i], rest[i+1:]
			} else {
				rest = nil
			}
			if len(comp) > linuxNameMax && !(bytes.HasPrefix(comp, []byte(".wh.")) && len(comp) <= linuxNameMax+4) {
				b.warn("index: name longer than 255 bytes (NAME_MAX): left out of the mount and the export",
					"name", string(p), "name_bytes", len(comp))
				return
			}
		}
	}
	if m.Type == TypeSymlink && len(m.LinkName) >= linuxPathMax {
		b.warn("index: symlink target of 4096 bytes or more (PATH_MAX): readlink gives ENAMETOOLONG",
			"name", string(p), "target_bytes", len(m.LinkName))
	}
}

// lookupPath finds the node of a normalised path without creating anything.
func (b *builder) lookupPath(p []byte) uint32 {
	cur := uint32(0)
	for len(p) > 0 {
		var comp []byte
		if i := bytes.IndexByte(p, '/'); i >= 0 {
			comp, p = p[:i], p[i+1:]
		} else {
			comp, p = p, nil
		}
		if cur != 0 && b.node(cur).typ != TypeDir {
			return noNode
		}
		idx, _ := b.lookup(cur, comp)
		if idx == noNode {
			return noNode
		}
		cur = idx
	}
	return cur
}

// putXattrs appends xattrs in table format: u32 count, then per xattr u32 name length, u32 value
// length, name, value.
func (b *builder) putXattrs(xs []tarXattr) (uint32, error) {
	need := 4
	for _, x := range xs {
		need += 8 + len(x.Name) + len(x.Value)
	}
	off := len(b.xattr)
	if off+need > maxArena {
		return 0, fmt.Errorf("xattrs: %w", ErrTableTooLarge)
	}
	b.xattr = binary.LittleEndian.AppendUint32(b.xattr, uint32(len(xs)))
	for _, x := range xs {
		b.xattr = binary.LittleEndian.AppendUint32(b.xattr, uint32(len(x.Name)))
		b.xattr = binary.LittleEndian.AppendUint32(b.xattr, uint32(len(x.Value)))
		b.xattr = append(append(b.xattr, x.Name...), x.Value...)
	}
	return uint32(off), nil
}

// putSparse appends a sparse map in table format: u32 count, u32 zero, then per region i64 offset,
// i64 length, i64 physical.
func (b *builder) putSparse(rs []SparseRegion) (uint32, error) {
	off := len(b.spars)
	if off+8+24*len(rs) > maxArena {
		return 0, fmt.Errorf("sparse maps: %w", ErrTableTooLarge)
	}
	b.spars = binary.LittleEndian.AppendUint32(b.spars, uint32(len(rs)))
	b.spars = binary.LittleEndian.AppendUint32(b.spars, 0)
	for _, r := range rs {
		b.spars = binary.LittleEndian.AppendUint64(b.spars, uint64(r.Offset))
		b.spars = binary.LittleEndian.AppendUint64(b.spars, uint64(r.Length))
		b.spars = binary.LittleEndian.AppendUint64(b.spars, uint64(r.Physical))
	}
	return uint32(off), nil
}

// scan feeds every member of sc to the builder. progress, when set, is called every 256 members.
func (b *builder) scan(ctx context.Context, sc *tarScanner, progress func(entries int64) error) error {
	for i := 0; ; i++ {
		if i&255 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			if progress != nil {
				if err := progress(b.members); err != nil {
					return err
				}
			}
		}
		m, err := sc.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := b.add(m); err != nil {
			return err
		}
	}
}

// layout is the numbering of the finished tree.
type layout struct {
	order []uint32 // table ID -> node
	newID []uint32 // node -> table ID, noNode when unreachable
	kids  []uint32 // children of each node grouped by parent, sorted by name
	start []uint32 // node -> first index in kids; start[n+1] ends the group
	// carrier maps an unreachable hardlink target to the hardlink that carries its data.
	carrier map[uint32]uint32
}

// finish numbers the tree: breadth first from the root, the children of each directory contiguous and
// sorted bytewise by name.
func (b *builder) finish() *layout {
	hashSize := len(b.hash) * 8
	b.hash = nil // not needed any more: collected before the layout takes its place
	collectBig(hashSize)
	n := b.n
	// Counting sort of the live nodes by parent, in place: start[p+1] counts p's children, then
	// accumulates to the end of p's group, then walks back to its beginning while the group is filled,
	// so that group p ends up as kids[start[p+1]:start[p+2]].
	l := &layout{start: make([]uint32, n+2)}
	for i := uint32(1); i < n; i++ {
		if nd := b.node(i); !nd.dead {
			l.start[nd.parent+1]++
		}
	}
	for i := uint32(1); i <= n+1; i++ {
		l.start[i] += l.start[i-1]
	}
	l.kids = make([]uint32, l.start[n+1])
	for i := n - 1; i >= 1; i-- {
		if nd := b.node(i); !nd.dead {
			l.start[nd.parent+1]--
			l.kids[l.start[nd.parent+1]] = i
		}
	}
	l.start = l.start[1:] // group p is now kids[start[p]:start[p+1]]
	cmp := func(x, y uint32) int { return bytes.Compare(b.name(b.node(x)), b.name(b.node(y))) }
	for p := uint32(0); p < n; p++ {
		g := l.kids[l.start[p]:l.start[p+1]]
		if len(g) > 1 && !slices.IsSortedFunc(g, cmp) {
			slices.SortFunc(g, cmp)
		}
	}
	l.newID = make([]uint32, n)
	for i := range l.newID {
		l.newID[i] = noNode
	}
	l.order = make([]uint32, 1, 1+len(l.kids))
	l.newID[0] = 0
	for i := 0; i < len(l.order); i++ {
		nd := l.order[i]
		if b.node(nd).typ != TypeDir {
			continue
		}
		for _, k := range l.kids[l.start[nd]:l.start[nd+1]] {
			l.newID[k] = uint32(len(l.order))
			l.order = append(l.order, k)
		}
	}
	// Hardlinks whose target was replaced or dropped later in the layer: the first such hardlink
	// carries the old target's data, the others link to it.
	for _, nd := range l.order {
		h := b.node(nd)
		if h.typ != TypeHardlink || h.link == noNode || l.newID[h.link] != noNode {
			continue
		}
		if l.carrier == nil {
			l.carrier = map[uint32]uint32{}
		}
		if _, ok := l.carrier[h.link]; !ok {
			l.carrier[h.link] = nd
		}
	}
	// The table is written from order, newID and start: the groups are not needed any more.
	kidsSize := len(l.kids) * 4
	l.kids = nil
	collectBig(kidsSize)
	return l
}

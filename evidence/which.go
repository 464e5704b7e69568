package evidence

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/ovlfmt"
	"github.com/imgfs/imgfs/overlay"
)

// ErrNotInAnyLayer means that no layer of the image has the path: no member, no whiteout of it.
var ErrNotInAnyLayer = errors.New("no layer has this path")

// Actions of a WhichEvent.
const (
	ActionAdded     = "added"      // the path appears, nothing was visible there below
	ActionChanged   = "changed"    // the layer's member replaces what was visible (content, metadata or type)
	ActionMerged    = "merged"     // a directory listed again with the same metadata; its contents merge
	ActionHidden    = "hidden"     // a whiteout, an opaque directory or a non-directory above hides what was visible
	ActionRecreated = "re-created" // the path appears again after a layer had hidden it
)

// Reasons of a hidden event.
const (
	HiddenByWhiteout       = "whiteout"        // ".wh.NAME" (or a character device 0/0) names the path
	HiddenByParentWhiteout = "parent-whiteout" // a whiteout names a directory above the path
	HiddenByOpaqueParent   = "opaque-parent"   // a directory above the path is opaque in this layer
	HiddenByReplacedParent = "parent-replaced" // a directory above the path is a non-directory in this layer
	hiddenReasonNone       = ""
)

const (
	whichMaxSymlinkHops = 40 // as Linux's path walk
	whichHashBufferSize = 1 << 20
	whichTimeLayout     = time.RFC3339Nano
)

// WhichReport is what `imgfs which` prints: every layer that did something to a path, bottom first,
// and the path's state in the merged view. Its JSON form is documented in the README and stable:
// fields are only ever added.
type WhichReport struct {
	// Path is the path asked about, normalised, with a leading "/".
	Path string `json:"path"`
	// Resolved is Path with its parent directories resolved in the merged view (symbolic links
	// followed as the mount follows them, inside the image); the events are about it.
	Resolved string `json:"resolved"`
	// Symlinks are the links followed to get from Path to Resolved, in order.
	Symlinks []WhichSymlink `json:"symlinks,omitempty"`
	// Events are the layers' actions on Resolved, bottom layer first.
	Events []WhichEvent `json:"events"`
	// LiteralEvents, when Resolved differs from Path, are the layers' actions on Path taken literally
	// (no symlink followed): what lay there before a parent became a symlink, or was hidden with it.
	LiteralEvents []WhichEvent `json:"literalEvents,omitempty"`
	// Final is Resolved in the merged view of all the layers.
	Final WhichFinal `json:"final"`
}

// WhichSymlink is one symbolic link followed while resolving a parent directory.
type WhichSymlink struct {
	Path   string `json:"path"`
	Target string `json:"target"`
}

// WhichEvent is one layer's action on the path.
type WhichEvent struct {
	Layer  int           `json:"layer"` // 1 is the bottom layer
	Digest digest.Digest `json:"digest"`
	DiffID digest.Digest `json:"diffID"`
	Action string        `json:"action"`
	// Reason says, for a hidden event, what hid the path.
	Reason string `json:"reason,omitempty"`
	// Member is the layer's member for the path, or for a hidden event the marker (or non-directory)
	// that hid it; absent when an opaque xattr did.
	Member *WhichMember `json:"member,omitempty"`
}

// WhichMember is one tar member as stored.
type WhichMember struct {
	Name string `json:"name"` // as stored in the tar, not normalised; "" for an implied directory
	Path string `json:"path"` // normalised, with a leading "/"
	Type string `json:"type"` // file, dir, symlink, hardlink, char, block, fifo
	// Implied marks a directory with no member of its own (a member below it implied it).
	Implied      bool   `json:"implied,omitempty"`
	Mode         string `json:"mode"` // octal permission bits with setuid, setgid, sticky: "0755"
	UID          uint32 `json:"uid"`
	GID          uint32 `json:"gid"`
	Size         int64  `json:"size"`
	Mtime        string `json:"mtime"` // RFC 3339, UTC
	MtimeUnix    int64  `json:"mtimeUnix"`
	HeaderOffset int64  `json:"headerOffset"` // of its first header block in the uncompressed layer stream
	DataOffset   int64  `json:"dataOffset"`   // of its first data byte in the uncompressed layer stream
	// SHA256 is the sha256 of the content (regular files, and hard links: their target's), hex.
	SHA256 string `json:"sha256,omitempty"`
	// LinkTarget is a symlink's target as stored, or a hard link's target path (normalised).
	LinkTarget string `json:"linkTarget,omitempty"`
	Devmajor   uint32 `json:"devmajor,omitempty"`
	Devminor   uint32 `json:"devminor,omitempty"`
	// Opaque marks a directory that hides the lower layers' contents of its path (".wh..wh..opq" in it,
	// or trusted.overlay.opaque=y).
	Opaque bool `json:"opaque,omitempty"`
	// HardlinkedAs lists the other names of this layer that are hard links to this member.
	HardlinkedAs []string `json:"hardlinkedAs,omitempty"`
	// Replaced counts earlier members of the same path in this layer that this one replaced.
	Replaced int `json:"replaced,omitempty"`
}

// WhichFinal is the path in the merged view.
type WhichFinal struct {
	Present bool `json:"present"`
	// Layer is the layer whose entry gives the path's attributes (for a hard link, its target's);
	// 0 when absent, or for a directory implied in every layer that has it. The other fields are
	// zero when the path is absent.
	Layer  int           `json:"layer"`
	Digest digest.Digest `json:"digest"`
	Type   string        `json:"type"`
	Mode   string        `json:"mode"`
	UID    uint32        `json:"uid"`
	GID    uint32        `json:"gid"`
	Size   int64         `json:"size"`
	Nlink  uint32        `json:"nlink"`
}

// frameRef is one layer's entry.
type frameRef struct {
	layer int
	id    index.ID
}

var noFrame = frameRef{layer: -1, id: index.NoID}

// probe is what one layer holds for a path: its entry (if any) and what in it hides the lower layers'
// entry of the path.
type probe struct {
	entry  index.ID // NoID: none
	reason string   // hiddenReasonNone: nothing hides the path
	marker index.ID // the member that hides it (NoID for an opaque xattr)
}

// probeLayer walks the normalised path comps in layer l as the union does (overlay's semantics: a
// layer's whiteouts and opaque markers hide the layers below it, not its own entries).
func probeLayer(l overlay.Layer, comps []string) probe {
	pr := probe{entry: index.NoID, marker: index.NoID}
	hide := func(reason string, marker index.ID) {
		if pr.reason == hiddenReasonNone {
			pr.reason, pr.marker = reason, marker
		}
	}
	if len(comps) == 0 {
		pr.entry = 0
		return pr
	}
	cur := index.ID(0)
	for k, c := range comps {
		last := k == len(comps)-1
		if m, ok := unionOpaque(l, cur); ok {
			hide(HiddenByOpaqueParent, m)
		}
		if m, ok := l.Lookup(cur, ovlfmt.WhiteoutPrefix+c); ok {
			if last {
				hide(HiddenByWhiteout, m)
			} else {
				hide(HiddenByParentWhiteout, m)
			}
		}
		id, ok := l.Lookup(cur, c)
		if !ok {
			return pr
		}
		e := l.Entry(id)
		if isWhiteoutChar(e) {
			if last {
				hide(HiddenByWhiteout, id)
			} else {
				hide(HiddenByParentWhiteout, id)
			}
			return pr
		}
		if last {
			pr.entry = id
			return pr
		}
		if e.Type != index.TypeDir {
			hide(HiddenByReplacedParent, id)
			return pr
		}
		cur = id
	}
	return pr
}

// Which reports every layer that added, changed, hid or re-created p (a path in the image; parent
// symlinks are resolved in the merged view, never on the host), with the members as stored, their
// offsets in the uncompressed layer streams and the sha256 of regular files' content, and p's state
// in the merged view. It reads only the layers that hold p. It returns ErrNotInAnyLayer (with the
// report filled in) when no layer has p.
func Which(ctx context.Context, img Layered, p string) (*WhichReport, error) {
	if err := img.check(); err != nil {
		return nil, err
	}
	// Lexically cleaned; ".." above the root stays at the root, as a path walk does.
	asked := strings.TrimPrefix(path.Clean("/"+p), "/")
	rep := &WhichReport{Path: "/" + asked, Events: []WhichEvent{}}
	resolved, hops, err := resolveParents(img.View, p)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", rep.Path, err)
	}
	rep.Resolved, rep.Symlinks = "/"+resolved, hops
	comps := splitNorm(resolved)
	if rep.Events, err = layerEvents(ctx, img, comps); err != nil {
		return nil, err
	}
	if resolved != asked {
		// The path taken literally: what lay there before a parent became a symlink.
		if rep.LiteralEvents, err = layerEvents(ctx, img, splitNorm(asked)); err != nil {
			return nil, err
		}
	}
	rep.Final = finalState(img, comps)
	if len(rep.Events) == 0 && len(rep.LiteralEvents) == 0 {
		return rep, ErrNotInAnyLayer
	}
	return rep, nil
}

// layerEvents returns the layers' actions on the normalised path comps, bottom first, with their
// members described.
func layerEvents(ctx context.Context, img Layered, comps []string) ([]WhichEvent, error) {
	type pending struct {
		ev    int // index in events
		frame frameRef
	}
	events := []WhichEvent{}
	var want []pending
	visible, everHidden := noFrame, false
	for j, l := range img.Layers {
		pr := probeLayer(l, comps)
		if pr.reason != hiddenReasonNone && visible != noFrame {
			events = append(events, WhichEvent{Layer: j + 1, Action: ActionHidden, Reason: pr.reason})
			if pr.marker != index.NoID {
				want = append(want, pending{len(events) - 1, frameRef{j, pr.marker}})
			}
			visible, everHidden = noFrame, true
		}
		if pr.entry == index.NoID {
			continue
		}
		e := l.Entry(pr.entry)
		action := ActionAdded
		switch {
		case visible != noFrame && e.Type == index.TypeDir && img.Layers[visible.layer].Entry(visible.id).Type == index.TypeDir:
			if e.Flags&index.FlagImplied != 0 {
				continue // an implied directory over a directory adds nothing
			}
			action = ActionMerged
			if ve := img.Layers[visible.layer].Entry(visible.id); ve.Flags&index.FlagImplied != 0 ||
				ve.Mode != e.Mode || ve.UID != e.UID || ve.GID != e.GID || ve.MtimeSec != e.MtimeSec || ve.MtimeNsec != e.MtimeNsec {
				action = ActionChanged
			}
		case visible != noFrame:
			action = ActionChanged
		case everHidden:
			action = ActionRecreated
		}
		events = append(events, WhichEvent{Layer: j + 1, Action: action})
		want = append(want, pending{len(events) - 1, frameRef{j, pr.entry}})
		visible = frameRef{j, pr.entry}
	}
	// The members as stored: one scan of each layer that holds one.
	byLayer := map[int][]pending{}
	for _, w := range want {
		byLayer[w.frame.layer] = append(byLayer[w.frame.layer], w)
	}
	for j := range img.Layers {
		ws := byLayer[j]
		if len(ws) == 0 {
			continue
		}
		frames := make([]index.ID, len(ws))
		for i, w := range ws {
			frames[i] = w.frame.id
		}
		members, err := describeMembers(ctx, img, j, frames)
		if err != nil {
			return nil, fmt.Errorf("layer %d (%s): %w", j+1, img.Desc.Layers[j].Digest, err)
		}
		for i, w := range ws {
			events[w.ev].Member = members[i]
		}
	}
	for i := range events {
		d := img.Desc.Layers[events[i].Layer-1]
		events[i].Digest, events[i].DiffID = d.Digest, d.DiffID
	}
	return events, nil
}

// finalState looks the resolved path up in the merged view.
func finalState(img Layered, comps []string) WhichFinal {
	n := overlay.Root
	var a overlay.Attr
	var err error
	if a, err = img.View.Attr(n); err != nil {
		return WhichFinal{}
	}
	for _, c := range comps {
		if a, err = img.View.Lookup(n, c); err != nil {
			return WhichFinal{}
		}
		n = a.Node
	}
	f := WhichFinal{Present: true, Type: a.Type.String(), Mode: fmt.Sprintf("%04o", a.Mode), UID: a.UID, GID: a.GID,
		Size: a.Size, Nlink: a.Nlink}
	if a.Layer >= 0 && a.Layer < len(img.Layers) {
		f.Layer = a.Layer + 1
		f.Digest = img.Desc.Layers[a.Layer].Digest
	}
	return f
}

// resolveParents resolves the parent directories of p in the merged view: symbolic links among them
// are followed (absolute targets from the image's root, ".." never above it), as the mount resolves
// them; the last component is not followed. From the first component that does not exist (or is not
// a directory) on, the rest is taken as it is.
func resolveParents(v *overlay.View, p string) (string, []WhichSymlink, error) {
	comps := strings.Split(p, "/")
	var stack []string
	var nodes []overlay.Node
	node := overlay.Root
	missing := false
	var hops []WhichSymlink
	for len(comps) > 0 {
		c := comps[0]
		comps = comps[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
				if !missing {
					nodes = nodes[:len(nodes)-1]
					node = overlay.Root
					if len(nodes) > 0 {
						node = nodes[len(nodes)-1]
					}
				}
			}
			continue
		}
		more := false
		for _, r := range comps {
			if r != "" && r != "." {
				more = true
				break
			}
		}
		if missing || !more {
			stack = append(stack, c)
			if !missing {
				nodes = append(nodes, 0)
			}
			missing = missing || !more
			continue
		}
		a, err := v.Lookup(node, c)
		if err != nil || (a.Type != index.TypeDir && a.Type != index.TypeSymlink) {
			stack = append(stack, c)
			missing = true
			continue
		}
		if a.Type == index.TypeSymlink {
			if len(hops) >= whichMaxSymlinkHops {
				return "", hops, errors.New("too many levels of symbolic links")
			}
			target, err := v.LinkTarget(a.Node)
			if err != nil {
				return "", hops, err
			}
			hops = append(hops, WhichSymlink{Path: "/" + path.Join(append(stack[:len(stack):len(stack)], c)...), Target: target})
			if strings.HasPrefix(target, "/") {
				stack, nodes, node = stack[:0], nodes[:0], overlay.Root
			}
			comps = append(strings.Split(target, "/"), comps...)
			continue
		}
		stack = append(stack, c)
		nodes = append(nodes, a.Node)
		node = a.Node
	}
	return strings.Join(stack, "/"), hops, nil
}

// describeMembers describes entries ids of layer j: from the table, then from one scan of the layer's
// stream for the names as stored, header offsets and content hashes.
func describeMembers(ctx context.Context, img Layered, j int, ids []index.ID) ([]*WhichMember, error) {
	l := img.Layers[j]
	out := make([]*WhichMember, len(ids))
	byPath := map[string][]int{}
	for i, id := range ids {
		e := l.Entry(id)
		p := l.Path(id)
		m := &WhichMember{Path: "/" + p, Type: e.Type.String(), Implied: e.Flags&index.FlagImplied != 0,
			Mode: fmt.Sprintf("%04o", e.Mode), UID: e.UID, GID: e.GID, Size: e.Size,
			Mtime: time.Unix(e.MtimeSec, int64(e.MtimeNsec)).UTC().Format(whichTimeLayout), MtimeUnix: e.MtimeSec,
			HeaderOffset: -1, DataOffset: -1, Devmajor: e.Devmajor, Devminor: e.Devminor}
		switch e.Type {
		case index.TypeSymlink, index.TypeHardlink:
			m.LinkTarget = l.LinkName(id)
		case index.TypeDir:
			_, m.Opaque = unionOpaque(l, id)
		}
		for _, h := range l.Hardlinks() {
			if l.Entry(h).Link == id {
				m.HardlinkedAs = append(m.HardlinkedAs, "/"+l.Path(h))
			}
		}
		if e.Type == index.TypeHardlink {
			sum, size, err := hardlinkContent(img, j, id)
			if err != nil {
				return nil, err
			}
			m.SHA256, m.Size = sum, size
		}
		out[i] = m
		if !m.Implied {
			byPath[p] = append(byPath[p], i)
		}
	}
	if len(byPath) == 0 {
		return out, nil
	}
	buf := make([]byte, whichHashBufferSize)
	seen := make([]int, len(ids))
	// The kept member of a regular file is the last of its path: once every wanted entry is a regular
	// file found at its data offset, the rest of the stream cannot change the answer.
	todo := 0
	for i, id := range ids {
		if !out[i].Implied {
			todo++
			if l.Entry(id).Type != index.TypeRegular {
				todo = -len(ids) - 1 // something must be the last of its path: scan to the end
			}
		}
	}
	err := l.Scan(ctx, func(mb *index.Member, data io.Reader) error {
		p, ok := index.CleanPath(mb.Name)
		if !ok {
			return nil
		}
		is, found := byPath[p]
		if !found {
			return nil
		}
		for _, i := range is {
			m := out[i]
			e := l.Entry(ids[i])
			seen[i]++
			// The member the table kept: the one with the entry's data offset for a regular file, else
			// the last of the path with the entry's type.
			if mb.Type != e.Type || (e.Type == index.TypeRegular && mb.Offset != e.Offset) {
				continue
			}
			m.Name, m.HeaderOffset, m.DataOffset = mb.Name, mb.Header, mb.Offset
			if mb.Type == index.TypeRegular {
				h := sha256.New()
				if _, err := io.CopyBuffer(h, data, buf); err != nil {
					return err
				}
				m.SHA256 = hex.EncodeToString(h.Sum(nil))
				if todo--; todo == 0 {
					return errScanDone
				}
			}
		}
		return nil
	})
	if err != nil && err != errScanDone {
		return nil, err
	}
	for i, n := range seen {
		out[i].Replaced = max(n-1, 0)
	}
	return out, nil
}

// errScanDone stops a scan that has found what it wanted.
var errScanDone = errors.New("scan done")

// hardlinkContent returns the sha256 and size of the content hard link id of layer j names: its target
// in the same layer, else the target path in the union of the layers below, as the view resolves it.
func hardlinkContent(img Layered, j int, id index.ID) (string, int64, error) {
	l := img.Layers[j]
	e := l.Entry(id)
	var src overlay.Layer = l
	tid := e.Link
	if tid == index.NoID {
		f := visibleBelow(img, j, splitNorm(l.LinkName(id)))
		if f == noFrame {
			return "", 0, nil // unresolvable: the view removes the name
		}
		src, tid = img.Layers[f.layer], f.id
		if te := src.Entry(tid); te.Type == index.TypeHardlink {
			return hardlinkContent(img, f.layer, tid)
		}
	}
	te := src.Entry(tid)
	if te.Type != index.TypeRegular {
		return "", 0, nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(entryReader{src, tid}, 0, te.Size)); err != nil {
		return "", 0, fmt.Errorf("reading hard link target %s: %w", src.Path(tid), err)
	}
	return hex.EncodeToString(h.Sum(nil)), te.Size, nil
}

// visibleBelow returns the entry visible at comps in the union of the layers below layer top.
func visibleBelow(img Layered, top int, comps []string) frameRef {
	visible := noFrame
	for j := 0; j < top; j++ {
		pr := probeLayer(img.Layers[j], comps)
		if pr.reason != hiddenReasonNone {
			visible = noFrame
		}
		if pr.entry != index.NoID {
			visible = frameRef{j, pr.entry}
		}
	}
	return visible
}

// entryReader reads one entry's data as an io.ReaderAt.
type entryReader struct {
	l  overlay.Layer
	id index.ID
}

func (r entryReader) ReadAt(p []byte, off int64) (int, error) { return r.l.ReadAt(r.id, p, off) }

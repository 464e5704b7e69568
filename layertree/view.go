package layertree

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/ovlfmt"
	"github.com/imgfs/imgfs/overlay"
)

// DefaultName is the name of the reserved directory at the root when the image has no entry of that
// name.
const DefaultName = ".imgfs"

// maxAltNames bounds the search for a free name when the image has DefaultName.
const maxAltNames = 1000

// LayerInfo identifies one layer of the image.
type LayerInfo struct {
	Digest string // the blob digest, "sha256:<hex>"
	DiffID string // the uncompressed tar's digest
}

// Image is what the tree shows of the image besides its layers: their identities (bottom first, one
// per layer of the view) and the raw manifest and config.
type Image struct {
	Layers   []LayerInfo
	Manifest []byte
	Config   []byte
}

// Options configure a View.
type Options struct {
	// Tree serves the reserved directory; without it the view is the merged view plus provenance.
	Tree bool
	// Name is the reserved directory's name; "" means DefaultName, or the first free alternative when
	// the image has an entry of that name. A Name that the image uses is an error.
	Name string
	// Logger receives a warning when the tree cannot have DefaultName; nil discards.
	Logger *slog.Logger
}

// View is a merged overlay.View with the reserved tree beside it and provenance attributes on its
// nodes. It has the method set that package fs serves (View, WritableView, UnlistedXattrs,
// DirCopyUpNotifier) and is safe for concurrent use.
type View struct {
	v       *overlay.View
	layers  []overlay.Layer
	img     Image
	tree    bool
	name    string
	history []byte
	names   []string // "<N>-<digest>" of every layer, index 0 = layer 1

	links []linkCount // in-layer hard link counts, sorted by (layer, target)

	hiddenOnce sync.Once
	hidden     []marks // per layer, computed at first use
}

// New returns the view over v, whose layers (bottom first) are layers, described by img.
func New(v *overlay.View, layers []overlay.Layer, img Image, opts Options) (*View, error) {
	if v.NumLayers() != len(layers) || len(img.Layers) != len(layers) {
		return nil, fmt.Errorf("layertree: %d layers in the view, %d given, %d described: %w",
			v.NumLayers(), len(layers), len(img.Layers), overlay.ErrInvalid)
	}
	if len(layers) > 1<<16-1 {
		return nil, fmt.Errorf("layertree: %d layers, at most %d supported: %w", len(layers), 1<<16-1, overlay.ErrInvalid)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &View{v: v, layers: layers, img: img, tree: opts.Tree}
	t.names = make([]string, len(layers))
	for i, l := range img.Layers {
		hex := l.Digest
		if j := strings.IndexByte(hex, ':'); j >= 0 {
			hex = hex[j+1:]
		}
		if len(hex) > 12 {
			hex = hex[:12]
		}
		t.names[i] = fmt.Sprintf("%d-%s", i+1, hex)
	}
	if !opts.Tree {
		return t, nil
	}
	t.history = historyOf(img.Config)
	t.countLinks()
	name, err := t.pickName(opts.Name)
	if err != nil {
		return nil, err
	}
	if name != DefaultName {
		log.Warn("the image has /"+DefaultName+"; the layer tree is at /"+name, "tree", name)
	}
	t.name = name
	return t, nil
}

// pickName returns the reserved directory's name: want, or the first free of DefaultName and its
// alternatives.
func (t *View) pickName(want string) (string, error) {
	free := func(name string) (bool, error) {
		_, err := t.v.Lookup(overlay.Root, name)
		switch {
		case err == nil:
			return false, nil
		case isNotExist(err):
			return true, nil
		}
		return false, fmt.Errorf("layertree: looking up /%s: %w", name, err)
	}
	if want != "" {
		if want == "." || want == ".." || strings.ContainsAny(want, "/\x00") || len(want) > overlay.MaxName ||
			strings.HasPrefix(want, ovlfmt.WhiteoutPrefix) {
			return "", fmt.Errorf("layertree: %q cannot name a directory of the root: %w", want, overlay.ErrInvalid)
		}
		ok, err := free(want)
		if err != nil {
			return "", err
		}
		if !ok {
			return "", fmt.Errorf("layertree: the image has /%s; choose another name for the layer tree: %w", want, overlay.ErrExist)
		}
		return want, nil
	}
	for i := 0; i <= maxAltNames; i++ {
		name := DefaultName
		if i > 0 {
			name = fmt.Sprintf("%s-%d", DefaultName, i)
		}
		ok, err := free(name)
		if err != nil {
			return "", err
		}
		if ok {
			return name, nil
		}
	}
	return "", fmt.Errorf("layertree: the image has /%s and %d alternatives: %w", DefaultName, maxAltNames, overlay.ErrExist)
}

// Name returns the reserved directory's name ("" without the tree).
func (t *View) Name() string { return t.name }

// historyOf returns the "history" member of config JSON cfg verbatim, "[]" when it has none.
func historyOf(cfg []byte) []byte {
	var c struct {
		History json.RawMessage `json:"history"`
	}
	if err := json.Unmarshal(cfg, &c); err != nil || len(c.History) == 0 || string(c.History) == "null" {
		return []byte("[]")
	}
	return c.History
}

// Attr returns the attributes of node n.
func (t *View) Attr(n overlay.Node) (overlay.Attr, error) {
	if k, l, id, ok := decode(n); ok {
		return t.treeAttr(n, k, l, id)
	}
	return t.v.Attr(n)
}

// Lookup returns the attributes of the entry called name in directory parent.
func (t *View) Lookup(parent overlay.Node, name string) (overlay.Attr, error) {
	if k, l, id, ok := decode(parent); ok {
		return t.treeLookup(k, l, id, name)
	}
	if parent == overlay.Root && t.tree && name == t.name {
		return t.treeAttr(metaNode(metaRoot), kindMeta, 0, metaRoot)
	}
	return t.v.Lookup(parent, name)
}

// ReadDir returns a snapshot of directory n. The root's listing is the merged view's: it does not
// list the reserved directory.
func (t *View) ReadDir(n overlay.Node) (*Dir, error) {
	if k, l, id, ok := decode(n); ok {
		return t.treeReadDir(k, l, id)
	}
	d, err := t.v.ReadDir(n)
	if err != nil {
		return nil, err
	}
	return &Dir{merged: d}, nil
}

// Readlink returns the target of symbolic link n.
func (t *View) Readlink(n overlay.Node) (string, error) {
	if k, l, id, ok := decode(n); ok {
		return t.treeReadlink(k, l, id)
	}
	return t.v.Readlink(n)
}

// Xattrs returns the extended attributes of node n: for the merged view the overlay view's without the
// reserved provenance names, for the tree the member's own.
func (t *View) Xattrs(n overlay.Node) ([]index.Xattr, error) {
	if k, l, id, ok := decode(n); ok {
		return t.treeXattrs(k, l, id)
	}
	xs, err := t.v.Xattrs(n)
	if err != nil {
		return nil, err
	}
	return withoutReserved(xs), nil
}

// Open returns the data of regular file n.
func (t *View) Open(n overlay.Node) (overlay.File, error) {
	if k, l, id, ok := decode(n); ok {
		return t.treeOpen(k, l, id)
	}
	return t.v.Open(n)
}

// Dir is a snapshot of a directory of the View: the merged view's, or one of the tree's.
type Dir struct {
	merged *overlay.Dir

	t     *View
	kind  kind
	layer int
	ids   []index.ID         // a layer directory's children shown (kindLayer, kindHidden)
	own   []overlay.DirEntry // a fixed directory's entries (kindMeta)
}

// Len returns the number of entries.
func (d *Dir) Len() int {
	switch {
	case d.merged != nil:
		return d.merged.Len()
	case d.own != nil:
		return len(d.own)
	}
	return len(d.ids)
}

// Entry returns entry i, 0 <= i < Len(); out of range it returns the zero DirEntry.
func (d *Dir) Entry(i int) overlay.DirEntry {
	switch {
	case d.merged != nil:
		return d.merged.Entry(i)
	case d.own != nil:
		if i < 0 || i >= len(d.own) {
			return overlay.DirEntry{}
		}
		return d.own[i]
	}
	if i < 0 || i >= len(d.ids) {
		return overlay.DirEntry{}
	}
	return d.t.dirEntry(d.kind, d.layer, d.ids[i])
}

func isNotExist(err error) bool { return errors.Is(err, overlay.ErrNotExist) }

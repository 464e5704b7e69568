package overlay

import "github.com/imgfs/imgfs/index"

// Origin says which member of which layer a node of the view shows (see View.Origin).
type Origin struct {
	// Layer is the index of the layer (bottom 0) whose entry supplies the node, or NumLayers when the
	// node's entry is in the upper directory.
	Layer int
	// Entry is that layer's entry: the resolved target of a hard link, the owner of a directory (its
	// topmost entry that is not implied). index.NoID for an upper entry.
	Entry index.ID
	// Implied says that the directory has no member of its own in any layer of its stack: Layer and
	// Entry are then its topmost implied entry (-1 and NoID for a root that no layer has a member for).
	Implied bool
}

// NumLayers returns the number of layers of the view.
func (v *View) NumLayers() int { return len(v.layers) }

// Origin returns where node n comes from: the layer and entry whose metadata and data it shows, or the
// upper directory. It computes this from the node alone, as Attr does.
func (v *View) Origin(n Node) (Origin, error) {
	a, err := v.Attr(n)
	if err != nil {
		return Origin{}, err
	}
	if a.Layer == len(v.layers) {
		return Origin{Layer: len(v.layers), Entry: index.NoID}, nil
	}
	if n == Root {
		if v.rootOwned {
			return Origin{Layer: int(v.rootOwner.layer), Entry: v.rootOwner.id}, nil
		}
		if len(v.root) == 0 {
			return Origin{Layer: -1, Entry: index.NoID, Implied: true}, nil
		}
		return Origin{Layer: int(v.root[0].layer), Entry: 0, Implied: true}, nil
	}
	f, e, err := v.frameOf(n)
	if err != nil {
		return Origin{}, err
	}
	return Origin{Layer: int(f.layer), Entry: f.id, Implied: e.Type == index.TypeDir && e.Flags&index.FlagImplied != 0}, nil
}

package layertree

import (
	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

// kind is the part of the tree a node belongs to.
type kind uint8

const (
	kindMeta   kind = 1 // the fixed directories and the image files; the node's entry is a meta*
	kindLayer  kind = 2 // NAME/layers/<N>/...: entry of layer N
	kindHidden kind = 3 // NAME/hidden/<N>/...: entry of layer N
)

// The fixed nodes of the tree (kindMeta entries).
const (
	metaRoot index.ID = iota
	metaLayers
	metaHidden
	metaImage
	metaManifest
	metaConfig
	metaHistory
	metaCount
)

const (
	treeBit  overlay.Node = 1 << 62
	upperBit overlay.Node = 1 << 63
)

// node returns the node of entry id of layer l in part k of the tree.
func node(k kind, l int, id index.ID) overlay.Node {
	return treeBit | overlay.Node(k)<<48 | overlay.Node(l)<<32 | overlay.Node(id)
}

func metaNode(id index.ID) overlay.Node { return node(kindMeta, 0, id) }

// decode returns the part, layer and entry of tree node n; ok is false for a node of the merged view.
func decode(n overlay.Node) (k kind, l int, id index.ID, ok bool) {
	if n&upperBit != 0 || n&treeBit == 0 {
		return 0, 0, 0, false
	}
	return kind(n >> 48 & 0xff), int(n >> 32 & 0xffff), index.ID(uint32(n)), true
}

// isTree reports whether n is a node of the tree.
func isTree(n overlay.Node) bool {
	_, _, _, ok := decode(n)
	return ok
}

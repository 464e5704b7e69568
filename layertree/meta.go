package layertree

import (
	"slices"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

// metaNames are the names of the fixed nodes.
var metaNames = [metaCount]string{
	metaLayers: "layers", metaHidden: "hidden", metaImage: "image",
	metaManifest: "manifest.json", metaConfig: "config.json", metaHistory: "history.json",
}

// metaParent is the directory that holds each fixed node.
var metaParent = [metaCount]index.ID{
	metaLayers: metaRoot, metaHidden: metaRoot, metaImage: metaRoot,
	metaManifest: metaImage, metaConfig: metaImage, metaHistory: metaImage,
}

// metaData returns the content of fixed file id; ok is false for a directory.
func (t *View) metaData(id index.ID) ([]byte, bool) {
	switch id {
	case metaManifest:
		return t.img.Manifest, true
	case metaConfig:
		return t.img.Config, true
	case metaHistory:
		return t.history, true
	}
	return nil, false
}

// metaAttr returns the attributes of fixed node id.
func (t *View) metaAttr(n overlay.Node, id index.ID) (overlay.Attr, error) {
	if id >= metaCount {
		return overlay.Attr{}, overlay.ErrInvalid
	}
	if b, ok := t.metaData(id); ok {
		size := int64(len(b))
		return overlay.Attr{Node: n, Type: index.TypeRegular, Mode: metaFileMode, Nlink: 1, Size: size,
			Blocks: (size + 511) / 512, Layer: -1}, nil
	}
	d, err := t.metaReadDir(id)
	if err != nil {
		return overlay.Attr{}, err
	}
	nl := uint32(2)
	for i := range d.Len() {
		if d.Entry(i).Type == index.TypeDir {
			nl++
		}
	}
	return overlay.Attr{Node: n, Type: index.TypeDir, Mode: metaDirMode, Nlink: nl, Layer: -1}, nil
}

// metaReadDir lists fixed directory id, sorted by name.
func (t *View) metaReadDir(id index.ID) (*Dir, error) {
	d := &Dir{t: t, kind: kindMeta, own: []overlay.DirEntry{}}
	switch id {
	case metaLayers:
		for i, name := range t.names {
			d.own = append(d.own, overlay.DirEntry{Name: name, Node: node(kindLayer, i, 0), Type: index.TypeDir})
		}
	case metaHidden:
		for i, name := range t.names {
			if t.marks(i).any() {
				d.own = append(d.own, overlay.DirEntry{Name: name, Node: node(kindHidden, i, 0), Type: index.TypeDir})
			}
		}
	case metaRoot, metaImage:
		for c := range metaCount {
			if c != metaRoot && metaParent[c] == id {
				typ := index.TypeDir
				if _, ok := t.metaData(c); ok {
					typ = index.TypeRegular
				}
				d.own = append(d.own, overlay.DirEntry{Name: metaNames[c], Node: metaNode(c), Type: typ})
			}
		}
	default:
		if id < metaCount {
			return nil, overlay.ErrNotDir
		}
		return nil, overlay.ErrInvalid
	}
	slices.SortFunc(d.own, func(a, b overlay.DirEntry) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return d, nil
}

// metaLookup returns the entry called name of fixed directory id.
func (t *View) metaLookup(id index.ID, name string) (overlay.Attr, error) {
	d, err := t.metaReadDir(id)
	if err != nil {
		return overlay.Attr{}, err
	}
	for i := range d.Len() {
		if e := d.Entry(i); e.Name == name {
			return t.Attr(e.Node)
		}
	}
	return overlay.Attr{}, overlay.ErrNotExist
}

package main

import (
	"fmt"
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/imgfs/imgfs/fs"
	"github.com/imgfs/imgfs/layertree"
	"github.com/imgfs/imgfs/overlay"
)

// What fs serves of a mount: the layer-tree view over the overlay view.
var (
	_ fs.View[*layertree.Dir] = (*layertree.View)(nil)
	_ fs.WritableView         = (*layertree.View)(nil)
	_ fs.UnlistedXattrs       = (*layertree.View)(nil)
	_ fs.DirCopyUpNotifier    = (*layertree.View)(nil)
)

// layerFlags are mount's flags of the layer tree.
func layerFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "layers", Usage: "show each layer, the files whiteouts hid and the image's manifest, config and history under /" + layertree.DefaultName},
		&cli.StringFlag{Name: "layers-name", Usage: "name the layer tree's directory at the root `NAME` (implies --layers; default " + layertree.DefaultName + ", or .imgfs-N when the image has that name)"},
	}
}

// layerView returns what a mount serves: view with the provenance attributes, and with --layers (or
// --layers-name) the layer tree beside it.
func (o *opened) layerView(c *cli.Context, view *overlay.View, log *slog.Logger) (*layertree.View, error) {
	img := layertree.Image{Manifest: o.img.RawManifest, Config: o.img.RawConfig}
	for _, l := range o.img.Layers {
		img.Layers = append(img.Layers, layertree.LayerInfo{Digest: string(l.Digest), DiffID: string(l.DiffID)})
	}
	name := c.String("layers-name")
	t, err := layertree.New(view, o.overlayLayers(), img, layertree.Options{
		Tree: c.Bool("layers") || c.Bool("evidence") || name != "", Name: name, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, err)
	}
	return t, nil
}

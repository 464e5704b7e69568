package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli/v2"

	"github.com/imgfs/imgfs/archive"
	"github.com/imgfs/imgfs/index"
)

// openStack opens the sources of a command, bottom first: one archive as openImageIndexed does, or a
// stack of archives and plain tarballs shown as one image whose layers are each source's layers in
// order (whiteouts of a higher source apply to every lower one, as between the layers of one image).
// In a stack, --image chooses in every archive that holds several images (one that holds one image
// gives it), and --platform applies to every source (a plain tarball takes it for its config).
func openStack(ctx context.Context, c *cli.Context, paths []string, log *slog.Logger, indexed bool) (*opened, error) {
	if len(paths) == 1 {
		return openImageIndexed(ctx, c, paths[0], log, indexed)
	}
	if err := checkStackFlags(c, paths); err != nil {
		return nil, err
	}
	platform, err := parsePlatform(c.String("platform"))
	if err != nil {
		return nil, err
	}
	dir, quiet := cacheDir(c), c.Bool("quiet")
	o := &opened{noVerify: c.Bool("no-verify")}
	imgs := make([]*archive.Image, 0, len(paths))
	for _, p := range paths {
		ap := newProgress(quiet, "reading archive "+filepath.Base(p), 1)
		arc, err := archive.Open(ctx, p, archive.Options{CacheDir: dir, Logger: log, Progress: ap.streamSlot(0), Hold: outerHold(dir, p, log)})
		ap.done()
		if err != nil {
			o.Close()
			return nil, err
		}
		if o.arc == nil {
			o.arc = arc
		} else {
			o.more = append(o.more, arc)
		}
		ref := ""
		if len(arc.Images()) > 1 {
			ref = c.String("image")
		}
		img, err := arc.Image(ctx, ref, platform)
		if err != nil {
			o.Close()
			return nil, err
		}
		imgs = append(imgs, img)
	}
	// The top source names the stack: its format is the default output format of a commit.
	o.arc, o.more[len(o.more)-1] = o.more[len(o.more)-1], o.arc
	if o.img, err = stackImage(paths, imgs); err != nil {
		o.Close()
		return nil, err
	}
	if !indexed {
		return o, nil
	}
	o.layers = make([]*index.Layer, len(o.img.Layers))
	if err := o.indexLayers(ctx, strings.Join(paths, " + "), dir, quiet, log); err != nil {
		o.Close()
		return nil, err
	}
	return o, nil
}

// stackImage is the image a stack shows: every source's layers in order, under the top image's config
// with rootfs.diff_ids of all the layers and the history of every source (so that a commit writes an
// image whose history matches its layers), and a manifest of that config and those layers.
func stackImage(paths []string, imgs []*archive.Image) (*archive.Image, error) {
	top := imgs[len(imgs)-1]
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(top.RawConfig, &cfg); err != nil {
		return nil, fmt.Errorf("%s: config: %w", paths[len(paths)-1], err)
	}
	st := &archive.Image{Names: top.Names, Platform: top.Platform, Config: top.Config}
	var diffIDs []digest.Digest
	var history []ispec.History
	for i, img := range imgs {
		for _, l := range img.Layers {
			l.Source = filepath.Base(paths[i]) + ":" + l.Source
			st.Layers = append(st.Layers, l)
			diffIDs = append(diffIDs, l.DiffID)
		}
		history = append(history, img.Config.History...)
	}
	st.Config.RootFS = ispec.RootFS{Type: "layers", DiffIDs: diffIDs}
	st.Config.History = history
	var rootfs map[string]json.RawMessage
	if raw, ok := cfg["rootfs"]; ok {
		if err := json.Unmarshal(raw, &rootfs); err != nil {
			return nil, fmt.Errorf("%s: config rootfs: %w", paths[len(paths)-1], err)
		}
	}
	if rootfs == nil {
		rootfs = map[string]json.RawMessage{"type": json.RawMessage(`"layers"`)}
	}
	var err error
	if rootfs["diff_ids"], err = json.Marshal(diffIDs); err != nil {
		return nil, err
	}
	if cfg["rootfs"], err = json.Marshal(rootfs); err != nil {
		return nil, err
	}
	if cfg["history"], err = json.Marshal(history); err != nil {
		return nil, err
	}
	if st.RawConfig, err = json.Marshal(cfg); err != nil {
		return nil, err
	}
	st.ConfigDigest = digest.FromBytes(st.RawConfig)
	st.Manifest = ispec.Manifest{
		MediaType: ispec.MediaTypeImageManifest,
		Config:    ispec.Descriptor{MediaType: ispec.MediaTypeImageConfig, Digest: st.ConfigDigest, Size: int64(len(st.RawConfig))},
	}
	st.Manifest.SchemaVersion = 2
	for _, l := range st.Layers {
		st.Manifest.Layers = append(st.Manifest.Layers, ispec.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size})
	}
	if st.RawManifest, err = json.Marshal(st.Manifest); err != nil {
		return nil, err
	}
	st.ManifestDigest = digest.FromBytes(st.RawManifest)
	return st, nil
}

// checkStackFlags refuses what a stack cannot be: an evidence mount or one with a custody record
// (both name and hash one archive).
func checkStackFlags(c *cli.Context, sources []string) error {
	if len(sources) < 2 {
		return nil
	}
	for _, f := range []string{"evidence", "custody"} {
		if c.IsSet(f) {
			return usageError(c, "--%s takes one archive, not a stack of %d", f, len(sources))
		}
	}
	return nil
}

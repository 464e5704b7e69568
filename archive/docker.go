package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"sort"
	"time"

	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/imgfs/imgfs/compression"
)

// legacyImage is one image of a docker-save manifest.json.
type legacyImage struct {
	n          int // 1-based position in manifest.json, for messages
	item       legacyEntry
	configName string
	rawConfig  []byte
}

// loadLegacy lists the images of a docker-save manifest.json. Each config is read (it is small), hashed
// to get the image ID, and checked against the digest its file name spells, when it spells one.
func (a *Archive) loadLegacy(ctx context.Context) error {
	raw, err := a.readFile("manifest.json", maxIndexJSON)
	if err != nil {
		return fmt.Errorf("manifest.json: %w", err)
	}
	items, err := parseLegacyManifest(raw)
	if err != nil {
		return fmt.Errorf("manifest.json: %w", err)
	}
	var repos map[string]map[string]string
	if a.src.exists("repositories") {
		if raw, err := a.readFile("repositories", maxIndexJSON); err != nil {
			a.log.Warn("repositories not readable", "err", err)
		} else if repos, err = parseRepositories(raw); err != nil {
			a.log.Warn("repositories not usable", "err", err)
		}
	}
	byConfig := map[digest.Digest]*entry{}
	for i, it := range items {
		if err := ctx.Err(); err != nil {
			return err
		}
		where := fmt.Sprintf("manifest.json: image %d: config %q", i+1, clip(it.Config))
		name, ok := cleanMember(it.Config)
		if !ok || name == "" {
			return invalidf("%s: path leaves the archive", where)
		}
		b, real, err := a.src.open(name)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		rawCfg, err := readBlobJSON(b, maxConfigJSON)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		cd := sha256Digest(rawCfg)
		for _, n := range []string{name, real} {
			if nd := digestFromName(n); nd != "" && nd != cd {
				return invalidf("%s: content is %s, not the digest its name spells", where, cd)
			}
		}
		names := appendNew(nil, it.RepoTags...)
		if len(names) == 0 && repos != nil {
			names = a.repositoriesNames(repos, it.Layers)
		}
		if e := byConfig[cd]; e != nil {
			e.ref.Names = appendNew(e.ref.Names, names...)
			continue
		}
		e := &entry{
			ref:    ImageRef{Names: names, Platform: configPlatform(rawCfg), Index: a.newGroup()},
			config: cd,
			legacy: &legacyImage{n: i + 1, item: it, configName: name, rawConfig: rawCfg},
		}
		byConfig[cd] = e
		a.addEntry(e)
	}
	return nil
}

// repositoriesNames finds an image's names in a docker-save "repositories" file, which maps repo:tag to
// the v1 ID of the image's top layer: the directory of "<id>/layer.tar", possibly reached by symlink.
func (a *Archive) repositoriesNames(repos map[string]map[string]string, layers []string) []string {
	if len(layers) == 0 {
		return nil
	}
	top, ok := cleanMember(layers[len(layers)-1])
	if !ok {
		return nil
	}
	_, topReal, err := a.src.open(top)
	if err != nil {
		return nil
	}
	var names []string
	for repo, tags := range repos {
		for tag, id := range tags {
			if sha256Of(id) == "" {
				continue
			}
			if path.Dir(top) == id {
				names = append(names, repo+":"+tag)
				continue
			}
			if _, real, err := a.src.open(id + "/layer.tar"); err == nil && real == topReal {
				names = append(names, repo+":"+tag)
			}
		}
	}
	sort.Strings(names)
	return names
}

// loadLegacyImage builds the Image of a docker-save entry, synthesizing its OCI manifest.
func (a *Archive) loadLegacyImage(ctx context.Context, e *entry) (*Image, error) {
	li := e.legacy
	where := "manifest.json"
	cfg, err := parseConfig(li.rawConfig)
	if err != nil {
		return nil, fmt.Errorf("%s: image %d: %q: %w", where, li.n, clip(li.configName), err)
	}
	if len(li.item.Layers) != len(cfg.RootFS.DiffIDs) {
		return nil, invalidf("%s: image %d: %d layers, but config %q has %d diff_ids", where, li.n, len(li.item.Layers), clip(li.configName), len(cfg.RootFS.DiffIDs))
	}
	layers := make([]Layer, len(li.item.Layers))
	descs := make([]ispec.Descriptor, len(li.item.Layers))
	for i, lp := range li.item.Layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		lw := fmt.Sprintf("%s: layer %d %q", where, i+1, clip(lp))
		name, ok := cleanMember(lp)
		if !ok || name == "" {
			return nil, invalidf("%s: path leaves the archive", lw)
		}
		b, real, err := a.src.open(name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", lw, err)
		}
		c, err := compression.Detect(io.NewSectionReader(b.R, b.Off, b.Size), 0)
		if err != nil {
			return nil, errorf(ErrUnsupported, "%s: %w", lw, err)
		}
		diffID := cfg.RootFS.DiffIDs[i]
		d, computed, err := a.legacyDigest(ctx, real, name, b, c, diffID, li.item.LayerSources)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", lw, err)
		}
		mt := LayerMediaType(c)
		descs[i] = ispec.Descriptor{MediaType: mt, Digest: d, Size: b.Size}
		layers[i] = Layer{Digest: d, DiffID: diffID, MediaType: mt, Size: b.Size, Source: real, DigestComputed: computed, a: a, blob: b}
	}
	man := ispec.Manifest{
		MediaType: ispec.MediaTypeImageManifest,
		Config:    ispec.Descriptor{MediaType: ispec.MediaTypeImageConfig, Digest: e.config, Size: int64(len(li.rawConfig))},
		Layers:    descs,
	}
	man.SchemaVersion = 2
	rawMan, err := json.Marshal(man)
	if err != nil {
		return nil, err
	}
	var plat ispec.Platform
	if e.ref.Platform != nil {
		plat = *e.ref.Platform
	}
	return &Image{
		Names: append([]string(nil), e.ref.Names...), ManifestDigest: sha256Digest(rawMan), Manifest: man, RawManifest: rawMan,
		ConfigDigest: e.config, RawConfig: li.rawConfig, Config: *cfg, Platform: plat, Layers: layers,
	}, nil
}

// LayerMediaType is the OCI layer media type of a blob compressed with c: the one rule by which both
// a docker-save layer read here and a layer imagewrite writes are typed.
func LayerMediaType(c compression.Format) string {
	switch c {
	case compression.Gzip:
		return ispec.MediaTypeImageLayerGzip
	case compression.Zstd:
		return ispec.MediaTypeImageLayerZstd
	}
	return ispec.MediaTypeImageLayer
}

// legacyDigest finds the digest of a docker-save layer blob without hashing it when it can: an
// uncompressed blob is its own diff_id; a LayerSources descriptor of the same size gives it; so does a
// file name spelling a digest other than the diff_id. Otherwise the blob is hashed once (and the result
// remembered; computed says so). Digests found without hashing are not verified.
func (a *Archive) legacyDigest(ctx context.Context, real, name string, b compression.Blob, c compression.Format, diffID digest.Digest, sources map[digest.Digest]ispec.Descriptor) (_ digest.Digest, computed bool, err error) {
	if c == compression.None {
		return diffID, false, nil
	}
	if s, ok := sources[diffID]; ok && s.Size == b.Size {
		return s.Digest, false, nil
	}
	for _, n := range []string{real, name} {
		if d := digestFromName(n); d != "" && d != diffID {
			return d, false, nil
		}
	}
	a.mu.Lock()
	d, ok := a.hashed[real]
	a.mu.Unlock()
	if ok {
		return d, true, nil
	}
	start := time.Now()
	d, err = hashBlob(ctx, b)
	if err != nil {
		return "", false, fmt.Errorf("hashing: %w", err)
	}
	a.log.Info("hashed a compressed layer to learn its digest", "member", real, "bytes", b.Size, "digest", d, "took", time.Since(start))
	a.mu.Lock()
	a.hashed[real] = d
	a.mu.Unlock()
	return d, true, nil
}

// hashBlob computes the sha256 digest of a blob, checking ctx as it goes.
func hashBlob(ctx context.Context, b compression.Blob) (digest.Digest, error) {
	dg := digest.SHA256.Digester()
	r := io.NewSectionReader(b.R, b.Off, b.Size)
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		n, err := r.Read(buf)
		dg.Hash().Write(buf[:n])
		if err == io.EOF {
			return dg.Digest(), nil
		}
		if err != nil {
			return "", err
		}
	}
}

package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/imgfs/imgfs/compression"
)

// maxIndexDepth bounds index nesting (index.json counts as depth 0).
const maxIndexDepth = 4

// Annotations that name images.
const (
	annotationContainerdName = "io.containerd.image.name" // full reference (containerd, docker 25+)
	annotationDockerRefType  = "vnd.docker.reference.type"
)

// loadOCI lists the images of an OCI layout. withManifestJSON says a docker 25+ manifest.json is present
// too: its RepoTags name the images, and it is read as a legacy archive when index.json lists none.
func (a *Archive) loadOCI(ctx context.Context, withManifestJSON bool) error {
	a.checkLayoutHeader()
	raw, err := a.readFile("index.json", maxIndexJSON)
	if err != nil {
		return fmt.Errorf("index.json: %w", err)
	}
	idx, err := parseIndex(raw)
	if err != nil {
		return fmt.Errorf("index.json: %w", err)
	}
	top := map[digest.Digest]int{} // top-level digest -> group, to merge duplicate entries (several tags)
	for i, d := range idx.Manifests {
		if err := ctx.Err(); err != nil {
			return err
		}
		names := annotationNames(d.Annotations)
		if g, ok := top[d.Digest]; ok {
			a.addNames(g, names)
			continue
		}
		where := fmt.Sprintf("index.json: manifests[%d] %s", i, shortDigest(d.Digest))
		g, err := a.addOCI(ctx, d, names, where)
		if err != nil {
			return err
		}
		if g >= 0 {
			top[d.Digest] = g
		}
	}
	// Read the manifests that are present: config digests (for selection by image ID), artifacts (left
	// out) and platforms. A manifest that cannot be read now is an error only when it is selected.
	kept := a.entries[:0]
	for _, e := range a.entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		a.peekManifest(e)
		if e.artifact {
			a.log.Debug("skipping artifact manifest", "digest", e.ref.ManifestDigest)
			continue
		}
		kept = append(kept, e)
	}
	a.entries = kept
	a.renumber()
	if withManifestJSON {
		if len(a.entries) == 0 {
			a.log.Info("index.json lists no images; reading manifest.json")
			return a.loadLegacy(ctx)
		}
		a.addRepoTags()
	}
	return nil
}

// renumber makes the entries' Index values consecutive again after entries were left out.
func (a *Archive) renumber() {
	next := map[int]int{}
	for _, e := range a.entries {
		n, ok := next[e.ref.Index]
		if !ok {
			n = len(next)
			next[e.ref.Index] = n
		}
		e.ref.Index = n
	}
	a.groups = len(next)
}

// checkLayoutHeader warns about a missing or unexpected oci-layout file; it does not fail the open.
func (a *Archive) checkLayoutHeader() {
	raw, err := a.readFile("oci-layout", maxLayoutHeader)
	if err != nil {
		a.log.Warn("no readable oci-layout file", "err", err)
		return
	}
	var l ispec.ImageLayout
	if err := json.Unmarshal(raw, &l); err != nil || !strings.HasPrefix(l.Version, "1.") {
		a.log.Warn("unexpected oci-layout file", "version", clip(l.Version))
	}
}

// annotationNames are the image names in a descriptor's annotations.
func annotationNames(ann map[string]string) []string {
	return appendNew(nil, ann[annotationContainerdName], ann[ispec.AnnotationRefName])
}

// isAttestation says whether d is an attestation manifest (buildkit provenance/SBOM), not an image.
func isAttestation(d ispec.Descriptor) bool {
	if d.Annotations[annotationDockerRefType] == "attestation-manifest" {
		return true
	}
	return d.Platform != nil && d.Platform.OS == "unknown" && d.Platform.Architecture == "unknown"
}

// descKind says whether d is a manifest ("manifest"), an index ("index"), or something else (""). An
// empty media type is resolved by looking at the blob, when it is present.
func (a *Archive) descKind(d ispec.Descriptor, limit int64) string {
	mt := d.MediaType
	if mt == "" {
		raw, err := a.readBlob(d, limit)
		if err != nil {
			return ""
		}
		p, err := probe(raw)
		if err != nil {
			return ""
		}
		switch {
		case p.MediaType != "":
			mt = p.MediaType
		case p.Manifests != nil:
			return "index"
		case p.Config != nil:
			return "manifest"
		}
	}
	switch {
	case isManifestType(mt):
		return "manifest"
	case isIndexType(mt):
		return "index"
	}
	return ""
}

// addOCI adds the images a top-level index.json descriptor leads to and returns their group, or -1 when
// it holds none. Unknown media types, artifacts and attestations are skipped; a nested index that cannot
// be read is skipped with a warning.
func (a *Archive) addOCI(ctx context.Context, d ispec.Descriptor, names []string, where string) (int, error) {
	if isAttestation(d) {
		return -1, nil
	}
	switch a.descKind(d, maxIndexJSON) {
	case "manifest":
		g := a.newGroup()
		a.addEntry(a.manifestEntry(d, names, g, nil))
		return g, nil
	case "index":
		g := a.groups
		n, err := a.expand(ctx, d, names, g, []ispec.Descriptor{d})
		if err != nil {
			if !errors.Is(err, ErrMissingBlob) {
				return -1, fmt.Errorf("%s: %w", where, err)
			}
			a.log.Warn("skipping index entry", "where", where, "err", err)
			a.skipped = append(a.skipped, fmt.Sprintf("%s: %v", where, err))
			return -1, nil
		}
		if n == 0 {
			return -1, nil
		}
		a.groups++
		return g, nil
	}
	switch d.MediaType {
	case mediaTypeDockerSchema1, mediaTypeDockerSchema1JWS:
		a.log.Warn("skipping docker schema 1 manifest", "where", where)
		a.skipped = append(a.skipped, where+": docker schema 1 manifests are not supported")
	default:
		a.log.Debug("skipping entry of unknown media type", "where", where, "mediaType", d.MediaType)
	}
	return -1, nil
}

// expand adds the manifests of the index d (reached through parents, top first, d last) to group g and
// returns how many.
func (a *Archive) expand(ctx context.Context, d ispec.Descriptor, names []string, g int, parents []ispec.Descriptor) (int, error) {
	if len(parents) > maxIndexDepth {
		return 0, invalidf("indexes nested more than %d deep", maxIndexDepth)
	}
	raw, err := a.readBlob(d, maxIndexJSON)
	if err != nil {
		return 0, fmt.Errorf("index %s: %w", d.Digest, err)
	}
	idx, err := parseIndex(raw)
	if err != nil {
		return 0, fmt.Errorf("index %s: %w", d.Digest, err)
	}
	if d.MediaType != "" && idx.MediaType != "" && idx.MediaType != d.MediaType {
		return 0, invalidf("index %s: mediaType %q does not match its descriptor's %q", d.Digest, clip(idx.MediaType), d.MediaType)
	}
	n := 0
	for _, c := range idx.Manifests {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if isAttestation(c) {
			continue
		}
		for _, p := range parents {
			if p.Digest == c.Digest {
				return n, invalidf("index %s: cycle: lists %s", d.Digest, c.Digest)
			}
		}
		cnames := appendNew(append([]string(nil), names...), annotationNames(c.Annotations)...)
		switch a.descKind(c, maxIndexJSON) {
		case "manifest":
			a.addEntry(a.manifestEntry(c, cnames, g, parents))
			n++
		case "index":
			m, err := a.expand(ctx, c, cnames, g, append(append([]ispec.Descriptor(nil), parents...), c))
			n += m
			if err != nil {
				if !errors.Is(err, ErrMissingBlob) {
					return n, err
				}
				a.log.Warn("skipping nested index", "digest", c.Digest, "err", err)
			}
		default:
			a.log.Debug("skipping entry of unknown media type", "index", d.Digest, "digest", c.Digest, "mediaType", c.MediaType)
		}
	}
	return n, nil
}

// manifestEntry makes the entry of an image manifest descriptor.
func (a *Archive) manifestEntry(d ispec.Descriptor, names []string, g int, parents []ispec.Descriptor) *entry {
	e := &entry{
		ref:  ImageRef{Names: names, ManifestDigest: d.Digest, Index: g},
		via:  parents,
		desc: d,
	}
	for _, p := range parents {
		e.parents = append(e.parents, p.Digest)
	}
	if p := d.Platform; p != nil && p.OS != "" && p.Architecture != "" {
		pc := *p
		e.ref.Platform, e.descPlatform = &pc, true
	}
	return e
}

// loadManifest reads, checks and parses the manifest of an OCI entry.
func (a *Archive) loadManifest(e *entry) (*ispec.Manifest, error) {
	raw, err := a.readBlob(e.desc, maxIndexJSON)
	if err != nil {
		return nil, err
	}
	m, err := parseManifest(raw)
	if err != nil {
		return nil, err
	}
	if mt := e.desc.MediaType; mt != "" && !isManifestType(mt) {
		return nil, invalidf("descriptor media type %q is not a manifest", clip(mt))
	}
	if mt := e.desc.MediaType; mt != "" && ociMediaType(mt) != m.MediaType && m.MediaType != "" {
		return nil, invalidf("mediaType %q does not match its descriptor's %q", m.MediaType, mt)
	}
	return m, nil
}

// isArtifact says whether a manifest describes an artifact rather than a container image: its config
// is not an image config, or an artifactType other than the image config's is declared (crane sets
// artifactType to the config media type on plain images).
func isArtifact(d ispec.Descriptor, m *ispec.Manifest) bool {
	notImage := func(t string) bool { return t != "" && ociMediaType(t) != ispec.MediaTypeImageConfig }
	return m.Config.MediaType != ispec.MediaTypeImageConfig || notImage(d.ArtifactType) || notImage(m.ArtifactType)
}

// peekManifest reads an entry's manifest (and, when the platform is unknown, its config) if present.
func (a *Archive) peekManifest(e *entry) {
	m, err := a.loadManifest(e)
	if err != nil {
		a.log.Debug("manifest not readable now", "digest", e.desc.Digest, "err", err)
		return
	}
	e.manifest, e.config = m, m.Config.Digest
	if isArtifact(e.desc, m) {
		e.artifact = true
		return
	}
	if e.ref.Platform == nil {
		if raw, err := a.readBlob(m.Config, maxConfigJSON); err == nil {
			e.ref.Platform = configPlatform(raw)
		}
	}
}

// addRepoTags names the images of a docker 25+ archive with the RepoTags of its manifest.json, matched
// by config digest. manifest.json problems are warnings here: index.json is authoritative.
func (a *Archive) addRepoTags() {
	raw, err := a.readFile("manifest.json", maxIndexJSON)
	if err != nil {
		a.log.Warn("manifest.json not readable", "err", err)
		return
	}
	items, err := parseLegacyManifest(raw)
	if err != nil {
		a.log.Warn("manifest.json not usable", "err", err)
		return
	}
	for _, it := range items {
		name, ok := cleanMember(it.Config)
		if !ok {
			continue
		}
		cd := digestFromName(name)
		if cd == "" {
			continue
		}
		for _, e := range a.entries {
			if e.config == cd {
				a.addNames(e.ref.Index, it.RepoTags)
			}
		}
	}
}

// loadOCIImage builds the Image of an OCI entry.
func (a *Archive) loadOCIImage(ctx context.Context, e *entry) (*Image, error) {
	where := "manifest " + string(e.desc.Digest)
	rawMan, err := a.readBlob(e.desc, maxIndexJSON)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	m := e.manifest
	if m == nil {
		if m, err = a.loadManifest(e); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
	}
	if isArtifact(e.desc, m) {
		return nil, errorf(ErrUnsupported, "%s: not a container image (config media type %q)", where, clip(m.Config.MediaType))
	}
	rawCfg, err := a.readBlob(m.Config, maxConfigJSON)
	if err != nil {
		return nil, fmt.Errorf("%s: config %s: %w", where, m.Config.Digest, err)
	}
	cfg, layers, err := imageLayers(ctx, where, m, rawCfg, func(l ispec.Descriptor, lw string) (compression.Blob, string, error) {
		b, _, err := a.src.open(blobPath(l.Digest))
		if err != nil {
			if errors.Is(err, ErrMissingBlob) {
				if len(l.URLs) > 0 {
					return b, "", errorf(ErrMissingBlob, "%s: blob not in archive (it lists urls, which are never fetched)", lw)
				}
				return b, "", errorf(ErrMissingBlob, "%s: blob not in archive", lw)
			}
			return b, "", fmt.Errorf("%s: %w", lw, err)
		}
		return b, blobPath(l.Digest), nil
	})
	if err != nil {
		return nil, err
	}
	for i := range layers {
		layers[i].a = a
	}
	plat := cfg.Platform
	if e.descPlatform {
		plat = *e.ref.Platform
	}
	man := *m
	man.Layers = append([]ispec.Descriptor(nil), m.Layers...)
	return &Image{
		Names: append([]string(nil), e.ref.Names...), ManifestDigest: e.desc.Digest, Manifest: man, RawManifest: rawMan,
		ConfigDigest: m.Config.Digest, RawConfig: rawCfg, Config: *cfg, Platform: plat, Layers: layers,
	}, nil
}

// imageLayers checks an image manifest's config (rawCfg, whose digest the caller has checked) against
// its layers and opens each layer's blob with open, which returns the blob and its source name: the
// one rule of an image manifest, for an archive and for a registry (NewImage). The blob's size must be
// its descriptor's.
func imageLayers(ctx context.Context, where string, m *ispec.Manifest, rawCfg []byte,
	open func(l ispec.Descriptor, lw string) (compression.Blob, string, error)) (*ispec.Image, []Layer, error) {
	cfg, err := parseConfig(rawCfg)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", where, err)
	}
	if len(m.Layers) != len(cfg.RootFS.DiffIDs) {
		return nil, nil, invalidf("%s: %d layers, but config %s has %d diff_ids", where, len(m.Layers), shortDigest(m.Config.Digest), len(cfg.RootFS.DiffIDs))
	}
	layers := make([]Layer, len(m.Layers))
	for i, l := range m.Layers {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		lw := fmt.Sprintf("%s: layer %d %s", where, i+1, l.Digest)
		if !isLayerType(l.MediaType) {
			return nil, nil, errorf(ErrUnsupported, "%s: unsupported layer media type %q", lw, clip(l.MediaType))
		}
		b, source, err := open(l, lw)
		if err != nil {
			return nil, nil, err
		}
		if b.Size != l.Size || b.R == nil {
			return nil, nil, invalidf("%s: blob is %d bytes, descriptor says %d", lw, b.Size, l.Size)
		}
		layers[i] = Layer{
			Digest: l.Digest, DiffID: cfg.RootFS.DiffIDs[i], MediaType: l.MediaType, Size: l.Size,
			Source: source, Annotations: l.Annotations, blob: b,
		}
	}
	return cfg, layers, nil
}

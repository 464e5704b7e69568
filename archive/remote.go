package archive

import (
	"context"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/imgfs/imgfs/compression"
)

// IsIndex says whether raw (a manifest document fetched from elsewhere, e.g. a registry) is an image
// index or docker manifest list rather than an image manifest.
func IsIndex(raw []byte) bool {
	p, err := probe(raw)
	if err != nil {
		return false
	}
	return isIndexType(p.MediaType) || (p.MediaType == "" && p.Manifests != nil)
}

// ChooseManifest picks from an index (or docker manifest list) the image manifest for platform (nil:
// the host's), skipping attestations and non-manifests, with the same rules as Archive.Image. The
// error lists the platforms there are.
func ChooseManifest(raw []byte, platform *ispec.Platform) (ispec.Descriptor, error) {
	idx, err := parseIndex(raw)
	if err != nil {
		return ispec.Descriptor{}, err
	}
	want := HostPlatform()
	if platform != nil {
		want = *platform
	}
	var best ispec.Descriptor
	score := 0
	var have []string
	for _, d := range idx.Manifests {
		if isAttestation(d) || !isManifestType(d.MediaType) {
			continue
		}
		if d.Platform == nil {
			have = append(have, "unknown")
			continue
		}
		have = append(have, FormatPlatform(*d.Platform))
		if s := platformScore(want, *d.Platform); s > score {
			best, score = d, s
		}
	}
	if score == 0 {
		return ispec.Descriptor{}, errorf(ErrPlatform, "no image for platform %s (there are: %s)", FormatPlatform(want), strings.Join(have, ", "))
	}
	return best, nil
}

// Remote is an image's documents fetched from elsewhere than an archive (a registry), for NewImage.
type Remote struct {
	Names []string
	// RawManifest is the image manifest as fetched; ManifestDigest its digest (checked here).
	RawManifest    []byte
	ManifestDigest digest.Digest
	// RawConfig is the config blob as fetched (its digest is checked against the manifest here).
	RawConfig []byte
	// Platform is the index entry's platform when the manifest was chosen from an index.
	Platform *ispec.Platform
	// Source names where the blobs are, for messages ("docker://host/repo").
	Source string
	// Blob returns the bytes of a layer blob; their size must be the descriptor's.
	Blob func(ispec.Descriptor) (compression.Blob, error)
}

// NewImage checks a manifest and config fetched from elsewhere exactly as Archive.Image checks an
// archive's (digests, docker schema 2 converted, as many layers as diff_ids) and returns the Image,
// whose layers read their bytes through r.Blob.
func NewImage(ctx context.Context, r Remote) (*Image, error) {
	where := r.Source + ": manifest " + string(r.ManifestDigest)
	if err := checkDigest(r.ManifestDigest); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if got := r.ManifestDigest.Algorithm().FromBytes(r.RawManifest); got != r.ManifestDigest {
		return nil, invalidf("%s: content has digest %s", where, got)
	}
	m, err := parseManifest(r.RawManifest)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if isArtifact(ispec.Descriptor{}, m) {
		return nil, errorf(ErrUnsupported, "%s: not a container image (config media type %q)", where, clip(m.Config.MediaType))
	}
	if got := m.Config.Digest.Algorithm().FromBytes(r.RawConfig); got != m.Config.Digest || int64(len(r.RawConfig)) != m.Config.Size {
		return nil, invalidf("%s: config %s: content has digest %s and %d bytes", where, m.Config.Digest, got, len(r.RawConfig))
	}
	cfg, layers, err := imageLayers(ctx, where, m, r.RawConfig, func(l ispec.Descriptor, lw string) (compression.Blob, string, error) {
		b, err := r.Blob(l)
		if err != nil {
			return b, "", fmt.Errorf("%s: %w", lw, err)
		}
		return b, r.Source + "@" + string(l.Digest), nil
	})
	if err != nil {
		return nil, err
	}
	for i := range layers {
		layers[i].remote = true
	}
	plat := cfg.Platform
	if r.Platform != nil {
		plat = *r.Platform
	}
	return &Image{
		Names: append([]string(nil), r.Names...), ManifestDigest: r.ManifestDigest, Manifest: *m, RawManifest: r.RawManifest,
		ConfigDigest: m.Config.Digest, RawConfig: r.RawConfig, Config: *cfg, Platform: plat, Layers: layers,
	}, nil
}

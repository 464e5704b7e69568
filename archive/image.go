package archive

import (
	"context"

	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/imgfs/imgfs/compression"
)

// Image is one image of an archive, with its manifest, config and layers checked for consistency: the
// manifest and config digests verified, every layer blob present with the size its descriptor states,
// as many layers as rootfs.diff_ids. Layer blobs themselves are not hashed (they can be gigabytes);
// package index computes the diff_id when it reads a layer.
type Image struct {
	// Names are the image's references as found in the archive (see ImageRef.Names).
	Names []string
	// ManifestDigest is the digest of the stored manifest; for a legacy docker-save image, the digest of
	// the canonical JSON of the synthesized Manifest.
	ManifestDigest digest.Digest
	// Manifest is the image manifest. Docker schema 2 manifests are converted to OCI media types; for a
	// legacy docker-save image it is synthesized from manifest.json with the layer digests found.
	Manifest ispec.Manifest
	// RawManifest is the manifest as stored, whose digest is ManifestDigest; for a legacy docker-save
	// image, the canonical JSON of the synthesized Manifest.
	RawManifest []byte
	// ConfigDigest is the digest of the config blob (for docker, the image ID).
	ConfigDigest digest.Digest
	// RawConfig is the config blob as stored, so that unknown fields survive edits.
	RawConfig []byte
	// Config is RawConfig parsed.
	Config ispec.Image
	// Platform is the platform the image was selected for: the index entry's when it came from a
	// multi-platform index, otherwise the config's.
	Platform ispec.Platform
	// Layers are the image's layers, bottom first.
	Layers []Layer
}

// Layer is one layer of an Image.
type Layer struct {
	// Digest is the digest of the stored blob. For legacy docker-save layers it is the diff_id when the
	// blob is uncompressed, else taken from LayerSources or from a file name spelling it, else computed
	// by hashing the blob once at selection.
	Digest digest.Digest
	// DiffID is the digest of the uncompressed layer tar, from the config's rootfs.diff_ids.
	DiffID digest.Digest
	// MediaType is the layer's OCI media type: from the manifest (docker types converted), or for legacy
	// docker-save layers derived from the blob's magic bytes. It may be wrong (tools mislabel layers):
	// readers detect compression by content.
	MediaType string
	// Size is the size of the stored blob.
	Size int64
	// Source is where the blob is in the archive ("blobs/sha256/<hex>", or the legacy member name after
	// symlinks), for messages.
	Source string
	// Annotations are the layer descriptor's annotations.
	Annotations map[string]string
	// DigestComputed says Digest is no claim: nothing in a docker-save archive names the compressed
	// blob's digest, so it was computed by hashing the blob.
	DigestComputed bool

	a      *Archive
	blob   compression.Blob
	remote bool // from NewImage: blob is not in an archive
}

// Blob returns the layer's stored bytes as a byte range of the archive (of its decompressed stream
// when the archive file is compressed). File is set when the range is in a plain file, for splicing.
// The blob is valid until the archive is closed.
func (l Layer) Blob() (compression.Blob, error) {
	if l.remote {
		return l.blob, nil
	}
	if l.a == nil {
		return compression.Blob{}, errorf(ErrInvalid, "layer %s: not from an archive", l.Digest)
	}
	if l.a.closed.Load() {
		return compression.Blob{}, ErrClosed
	}
	return l.blob, nil
}

// Image selects one image and loads it. ref is "" for the only image; a tag ("latest"), a name
// ("foo:1", "docker.io/library/foo:1", "localhost/foo" — docker.io/ and library/ are normalised, a
// missing tag means "latest", a registry prefix may be left out); or a digest ("sha256:<hex>") or hex
// prefix of at least 12 digits, matching a manifest, an index or a config (image ID), optionally after a
// name ("foo@sha256:..."). platform selects among the images of a multi-platform index; nil means the
// host's platform. When several images or none match, the error lists the choices.
func (a *Archive) Image(ctx context.Context, ref string, platform *ispec.Platform) (*Image, error) {
	if a.closed.Load() {
		return nil, a.wrap(ErrClosed)
	}
	e, err := a.selectEntry(ref, platform)
	if err != nil {
		return nil, a.wrap(err)
	}
	var img *Image
	switch {
	case e.plain != nil:
		img, err = a.loadPlainImage(e, platform)
	case e.legacy != nil:
		img, err = a.loadLegacyImage(ctx, e)
	default:
		img, err = a.loadOCIImage(ctx, e)
	}
	if err != nil {
		return nil, a.wrap(err)
	}
	return img, nil
}

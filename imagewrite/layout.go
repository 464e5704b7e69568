package imagewrite

import (
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/imgfs/imgfs/compression"
)

// layout names the files of an output format and writes its documents.
type layout interface {
	// begin writes what comes before the blobs.
	begin(st store) error
	// layerName is the file name of a layer blob.
	layerName(d digest.Digest, c compression.Format) string
	// addLayer records the next layer, bottom first.
	addLayer(name string, desc ispec.Descriptor)
	// finish writes the config and the documents that describe the image, and returns the manifest
	// digest.
	finish(st store, rawCfg []byte, tags []string, plat *ispec.Platform) (digest.Digest, error)
}

func newLayout(f Format) layout {
	if f == FormatDockerArchive {
		return &dockerLayout{}
	}
	return &ociLayout{}
}

// manifest builds the OCI manifest of a config and layers.
func manifest(rawCfg []byte, layers []ispec.Descriptor) ispec.Manifest {
	m := ispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ispec.MediaTypeImageManifest,
		Config:    ispec.Descriptor{MediaType: ispec.MediaTypeImageConfig, Digest: digest.FromBytes(rawCfg), Size: int64(len(rawCfg))},
		Layers:    layers,
	}
	if m.Layers == nil {
		m.Layers = []ispec.Descriptor{}
	}
	return m
}

// ociLayout is an OCI image layout (a directory, or a tar of one).
type ociLayout struct {
	layers []ispec.Descriptor
}

func blobName(d digest.Digest) string { return "blobs/" + d.Algorithm().String() + "/" + d.Encoded() }

func (o *ociLayout) begin(st store) error {
	raw, err := json.Marshal(ispec.ImageLayout{Version: ispec.ImageLayoutVersion})
	if err != nil {
		return err
	}
	if err := st.putFile(ispec.ImageLayoutFile, raw); err != nil {
		return err
	}
	if err := st.mkdir("blobs"); err != nil {
		return err
	}
	return st.mkdir("blobs/sha256")
}

func (o *ociLayout) layerName(d digest.Digest, _ compression.Format) string { return blobName(d) }

func (o *ociLayout) addLayer(_ string, desc ispec.Descriptor) { o.layers = append(o.layers, desc) }

func (o *ociLayout) finish(st store, rawCfg []byte, tags []string, plat *ispec.Platform) (digest.Digest, error) {
	if err := putBlob(st, rawCfg); err != nil {
		return "", err
	}
	rawMan, err := json.Marshal(manifest(rawCfg, o.layers))
	if err != nil {
		return "", err
	}
	if err := putBlob(st, rawMan); err != nil {
		return "", err
	}
	desc := ispec.Descriptor{MediaType: ispec.MediaTypeImageManifest, Digest: digest.FromBytes(rawMan), Size: int64(len(rawMan)), Platform: plat}
	idx := ispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ispec.MediaTypeImageIndex, Manifests: []ispec.Descriptor{}}
	for _, t := range tags {
		d := desc
		d.Annotations = map[string]string{ispec.AnnotationRefName: t, annotationContainerdName: fullName(t)}
		idx.Manifests = append(idx.Manifests, d)
	}
	if len(tags) == 0 {
		idx.Manifests = append(idx.Manifests, desc)
	}
	rawIdx, err := json.Marshal(idx)
	if err != nil {
		return "", err
	}
	if err := st.putFile(ispec.ImageIndexFile, rawIdx); err != nil {
		return "", err
	}
	return desc.Digest, nil
}

// annotationContainerdName is the annotation docker 25+ and containerd give the full image name.
const annotationContainerdName = "io.containerd.image.name"

// putBlob adds a small blob under blobs/ unless it is there.
func putBlob(st store, raw []byte) error {
	name := blobName(digest.FromBytes(raw))
	if st.has(name) {
		return nil
	}
	return st.putFile(name, raw)
}

// dockerLayout is a docker-save tarball: layer files "<hex>.tar" (".tar.gz", ".tar.zst" when
// compressed), the config "<hex>.json", manifest.json and repositories.
type dockerLayout struct {
	names []string
	descs []ispec.Descriptor
}

// dockerManifest is one entry of manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

func (o *dockerLayout) begin(store) error { return nil }

func (o *dockerLayout) layerName(d digest.Digest, c compression.Format) string {
	switch c {
	case compression.Gzip:
		return d.Encoded() + ".tar.gz"
	case compression.Zstd:
		return d.Encoded() + ".tar.zst"
	}
	return d.Encoded() + ".tar"
}

func (o *dockerLayout) addLayer(name string, desc ispec.Descriptor) {
	o.names = append(o.names, name)
	o.descs = append(o.descs, ispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size})
}

func (o *dockerLayout) finish(st store, rawCfg []byte, tags []string, _ *ispec.Platform) (digest.Digest, error) {
	cfgName := digest.FromBytes(rawCfg).Encoded() + ".json"
	if err := st.putFile(cfgName, rawCfg); err != nil {
		return "", err
	}
	entry := dockerManifest{Config: cfgName, RepoTags: tags, Layers: o.names}
	if entry.Layers == nil {
		entry.Layers = []string{}
	}
	raw, err := json.Marshal([]dockerManifest{entry})
	if err != nil {
		return "", err
	}
	if err := st.putFile("manifest.json", raw); err != nil {
		return "", err
	}
	if len(tags) > 0 && len(o.names) > 0 {
		// Legacy loaders map a tag to the top layer's v1 ID, the directory of its layer.tar. This
		// layout has no such directories; the top layer file's name stands in (loaders read
		// manifest.json first).
		top := o.descs[len(o.descs)-1].Digest.Encoded()
		repos := map[string]map[string]string{}
		for _, t := range tags {
			repo, tag := splitTag(t)
			if repos[repo] == nil {
				repos[repo] = map[string]string{}
			}
			repos[repo][tag] = top
		}
		raw, err := json.Marshal(repos)
		if err != nil {
			return "", err
		}
		if err := st.putFile("repositories", raw); err != nil {
			return "", err
		}
	}
	rawMan, err := json.Marshal(manifest(rawCfg, o.descs))
	if err != nil {
		return "", fmt.Errorf("manifest: %w", err)
	}
	return digest.FromBytes(rawMan), nil
}

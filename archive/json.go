package archive

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/imgfs/imgfs/compression"
)

// Size caps of the JSON documents read from an archive. A larger document is an error; it is never read
// whole (CVE-2023-25153).
const (
	maxIndexJSON    = 4 << 20  // index.json, nested indexes, manifests, manifest.json, repositories
	maxConfigJSON   = 16 << 20 // image configs
	maxLayoutHeader = 64 << 10 // oci-layout
)

// Media types of the docker image format (schema 2) found in OCI indexes, and their OCI equivalents.
const (
	mediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	mediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	mediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	mediaTypeDockerForeignGzip  = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	mediaTypeDockerSchema1      = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeDockerSchema1JWS   = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	// The OCI non-distributable layer types are deprecated in image-spec 1.1 but still found.
	mediaTypeOCINonDistributable     = "application/vnd.oci.image.layer.nondistributable.v1.tar"
	mediaTypeOCINonDistributableGzip = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
	mediaTypeOCINonDistributableZstd = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
)

// readBlobJSON reads a whole JSON document of at most limit bytes from b.
func readBlobJSON(b compression.Blob, limit int64) ([]byte, error) {
	if b.Size > limit {
		return nil, invalidf("document is %d bytes, more than the %d allowed", b.Size, limit)
	}
	buf := make([]byte, b.Size)
	n, err := b.R.ReadAt(buf, b.Off)
	if n == len(buf) {
		return buf, nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return nil, fmt.Errorf("reading: %w", err)
}

// docProbe finds out which fields a document has, to refuse ambiguous documents (CVE-2021-41190).
type docProbe struct {
	SchemaVersion *int            `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Manifests     json.RawMessage `json:"manifests"`
	Config        json.RawMessage `json:"config"`
	Layers        json.RawMessage `json:"layers"`
	FSLayers      json.RawMessage `json:"fsLayers"`
}

func probe(raw []byte) (docProbe, error) {
	var p docProbe
	if err := json.Unmarshal(raw, &p); err != nil {
		return p, invalidf("%s", jsonError(err))
	}
	if p.Manifests != nil && (p.Layers != nil || p.Config != nil) {
		return p, invalidf("ambiguous document: has both manifests and config/layers")
	}
	return p, nil
}

// jsonError words encoding/json errors for users: no Go type names.
func jsonError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d: %s", se.Offset, clip(se.Error()))
	case errors.As(err, &te):
		where := ""
		if te.Field != "" {
			where = fmt.Sprintf(" in field %q", clip(te.Field))
		}
		return fmt.Sprintf("malformed JSON: %s%s where %s is expected", te.Value, where, jsonKind(te.Type))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: unexpected end"
	}
	return "malformed JSON: " + clip(strings.TrimPrefix(err.Error(), "json: "))
}

// jsonKind names what a Go type expects in JSON.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "a base64 string"
		}
		return "a list"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "another type"
}

// isIndexType says whether mt is an image index or a docker manifest list.
func isIndexType(mt string) bool {
	return mt == ispec.MediaTypeImageIndex || mt == mediaTypeDockerManifestList
}

// isManifestType says whether mt is an OCI image manifest or a docker schema 2 manifest.
func isManifestType(mt string) bool {
	return mt == ispec.MediaTypeImageManifest || mt == mediaTypeDockerManifest
}

// parseIndex parses an image index (or docker manifest list) and checks every descriptor's digest.
// It never panics on any input.
func parseIndex(raw []byte) (*ispec.Index, error) {
	p, err := probe(raw)
	if err != nil {
		return nil, err
	}
	if p.Layers != nil || p.Config != nil || p.FSLayers != nil {
		return nil, invalidf("not an index: has config/layers")
	}
	if p.SchemaVersion == nil || *p.SchemaVersion != 2 {
		return nil, invalidf("schemaVersion must be 2")
	}
	if p.MediaType != "" && !isIndexType(p.MediaType) {
		return nil, invalidf("unexpected mediaType %q", clip(p.MediaType))
	}
	var idx ispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, invalidf("%s", jsonError(err))
	}
	for i, d := range idx.Manifests {
		if err := checkDigest(d.Digest); err != nil {
			return nil, fmt.Errorf("manifests[%d]: %w", i, err)
		}
		if d.Size < 0 {
			return nil, invalidf("manifests[%d]: negative size", i)
		}
	}
	return &idx, nil
}

// parseManifest parses an OCI image manifest or a docker schema 2 manifest, checks its digests and
// returns it converted to OCI media types. It never panics on any input.
func parseManifest(raw []byte) (*ispec.Manifest, error) {
	p, err := probe(raw)
	if err != nil {
		return nil, err
	}
	if p.FSLayers != nil || p.MediaType == mediaTypeDockerSchema1 || p.MediaType == mediaTypeDockerSchema1JWS {
		return nil, errorf(ErrUnsupported, "docker schema 1 manifests are not supported")
	}
	if p.Manifests != nil {
		return nil, invalidf("not a manifest: has manifests")
	}
	if p.SchemaVersion == nil || *p.SchemaVersion != 2 {
		return nil, invalidf("schemaVersion must be 2")
	}
	if p.MediaType != "" && !isManifestType(p.MediaType) {
		return nil, invalidf("unexpected mediaType %q", clip(p.MediaType))
	}
	if p.Config == nil {
		return nil, invalidf("no config")
	}
	var m ispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, invalidf("%s", jsonError(err))
	}
	if err := checkDigest(m.Config.Digest); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if m.Config.Size < 0 {
		return nil, invalidf("config: negative size")
	}
	for i, l := range m.Layers {
		if err := checkDigest(l.Digest); err != nil {
			return nil, fmt.Errorf("layer %d: %w", i+1, err)
		}
		if l.Size < 0 {
			return nil, invalidf("layer %d: negative size", i+1)
		}
	}
	if m.MediaType == mediaTypeDockerManifest {
		m.MediaType = ispec.MediaTypeImageManifest
	}
	m.Config.MediaType = ociMediaType(m.Config.MediaType)
	for i := range m.Layers {
		m.Layers[i].MediaType = ociMediaType(m.Layers[i].MediaType)
	}
	return &m, nil
}

// ociMediaType maps docker schema 2 media types to their OCI equivalents; others are returned as is.
func ociMediaType(mt string) string {
	switch mt {
	case mediaTypeDockerManifest:
		return ispec.MediaTypeImageManifest
	case mediaTypeDockerManifestList:
		return ispec.MediaTypeImageIndex
	case mediaTypeDockerConfig:
		return ispec.MediaTypeImageConfig
	case mediaTypeDockerLayerGzip:
		return ispec.MediaTypeImageLayerGzip
	case mediaTypeDockerLayer:
		return ispec.MediaTypeImageLayer
	case mediaTypeDockerForeignGzip:
		return mediaTypeOCINonDistributableGzip
	}
	return mt
}

// isLayerType says whether mt (after ociMediaType) is a layer this package hands out.
func isLayerType(mt string) bool {
	switch mt {
	case ispec.MediaTypeImageLayer, ispec.MediaTypeImageLayerGzip, ispec.MediaTypeImageLayerZstd,
		mediaTypeOCINonDistributable, mediaTypeOCINonDistributableGzip, mediaTypeOCINonDistributableZstd:
		return true
	}
	return false
}

// parseConfig parses an image config and checks its rootfs.
func parseConfig(raw []byte) (*ispec.Image, error) {
	var c ispec.Image
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, invalidf("config: %s", jsonError(err))
	}
	if c.RootFS.Type != "layers" {
		return nil, invalidf("config: rootfs.type is %q, want \"layers\"", clip(c.RootFS.Type))
	}
	for i, d := range c.RootFS.DiffIDs {
		if err := checkDigest(d); err != nil {
			return nil, fmt.Errorf("config: diff_ids[%d]: %w", i, err)
		}
	}
	return &c, nil
}

// configPlatform is the platform a config declares, or nil when it declares none.
func configPlatform(raw []byte) *ispec.Platform {
	var c struct{ ispec.Platform }
	if json.Unmarshal(raw, &c) != nil || c.OS == "" || c.Architecture == "" {
		return nil
	}
	p := c.Platform
	return &p
}

// legacyEntry is one element of a docker-save manifest.json.
type legacyEntry struct {
	Config       string
	RepoTags     []string
	Layers       []string
	Parent       string
	LayerSources map[digest.Digest]ispec.Descriptor
}

// parseLegacyManifest parses a docker-save manifest.json. It never panics on any input.
func parseLegacyManifest(raw []byte) ([]legacyEntry, error) {
	var es []legacyEntry
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&es); err != nil {
		return nil, invalidf("%s", jsonError(err))
	}
	for i, e := range es {
		if e.Config == "" {
			return nil, invalidf("image %d: no Config", i+1)
		}
		for d, desc := range e.LayerSources {
			if err := checkDigest(d); err != nil {
				return nil, fmt.Errorf("image %d: LayerSources: %w", i+1, err)
			}
			if err := checkDigest(desc.Digest); err != nil {
				return nil, fmt.Errorf("image %d: LayerSources[%s]: %w", i+1, d, err)
			}
		}
	}
	return es, nil
}

// parseRepositories parses a docker-save "repositories" file: {repo: {tag: v1 id}}.
func parseRepositories(raw []byte) (map[string]map[string]string, error) {
	var r map[string]map[string]string
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, invalidf("%s", jsonError(err))
	}
	return r, nil
}

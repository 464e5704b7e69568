package archive

import (
	"fmt"

	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/imgfs/imgfs/compression"
)

// Doc is one document of the chain that leads from an archive's top to an image's layers (an index,
// the manifest, the config), with what its parent claims about it and where its bytes are. Nothing in
// a Doc is checked: it is the claim and the bytes, for a verifier to compare.
type Doc struct {
	// Kind is "index", "manifest", "config" or "layer".
	Kind string
	// Digest is the digest the parent claims; "" when nothing claims one (a docker-save config whose
	// file name spells no digest).
	Digest digest.Digest
	// Size is the size the parent claims; -1 when nothing claims one (docker-save configs).
	Size int64
	// ClaimedBy names the document that makes the claim: "index.json", "index sha256:…",
	// "manifest sha256:…" or "manifest.json".
	ClaimedBy string
	// Source is where the bytes are in the archive: "blobs/sha256/<hex>", or a member or file name.
	Source string
	// Blob is the stored bytes; Blob.R is nil when they are missing (Missing says why).
	Blob    compression.Blob
	Missing error
}

// Chain returns the documents that lead to the image ref and platform select (as Image selects it),
// top first: for an OCI image, the indexes it was reached through, its manifest and, when the
// manifest's bytes parse, its config and its layer blobs (as the manifest describes them; Image adds
// the diff_ids); for a docker-save image, its config. It reads only what it needs
// to find them and checks no digest: Image checks them, and a verifier hashes them itself to say
// which one is broken.
func (a *Archive) Chain(ref string, platform *ispec.Platform) ([]Doc, error) {
	if a.closed.Load() {
		return nil, a.wrap(ErrClosed)
	}
	e, err := a.selectEntry(ref, platform)
	if err != nil {
		return nil, a.wrap(err)
	}
	if e.legacy != nil {
		d := Doc{Kind: "config", Digest: digestFromName(e.legacy.configName), Size: -1, ClaimedBy: "manifest.json",
			Source: e.legacy.configName}
		d.Blob, d.Source, d.Missing = a.src.open(e.legacy.configName)
		return []Doc{d}, nil
	}
	var docs []Doc
	claimedBy := "index.json"
	add := func(kind string, desc ispec.Descriptor) Doc {
		d := Doc{Kind: kind, Digest: desc.Digest, Size: desc.Size, ClaimedBy: claimedBy}
		if err := checkDigest(desc.Digest); err != nil {
			d.Missing = err
		} else {
			d.Source = blobPath(desc.Digest)
			d.Blob, _, d.Missing = a.src.open(d.Source)
		}
		docs = append(docs, d)
		if kind != "layer" {
			claimedBy = kind + " " + string(desc.Digest)
		}
		return d
	}
	for _, p := range e.via {
		add("index", p)
	}
	md := add("manifest", e.desc)
	m := e.manifest
	if m == nil && md.Missing == nil {
		// Not readable as a checked manifest (it may not match its digest): its claims are still
		// what a verifier reports on.
		if raw, err := readBlobJSON(md.Blob, maxIndexJSON); err == nil {
			m, _ = parseManifest(raw)
		}
	}
	if m != nil {
		claims := claimedBy
		add("config", m.Config)
		claimedBy = claims
		for _, l := range m.Layers {
			add("layer", l)
		}
	}
	return docs, nil
}

// Where says where a blob of this archive is, for messages: the file's path for a directory, or the
// member name and the blob's offset in the tar (in its decompressed stream for a compressed archive).
func (a *Archive) Where(source string, b compression.Blob) string {
	switch a.format {
	case FormatOCILayout, FormatDockerDir:
		return a.path + "/" + source
	}
	if a.comp != compression.None {
		return fmt.Sprintf("%s: member %s at offset %d of the %s-decompressed tar", a.path, source, b.Off, a.comp)
	}
	return fmt.Sprintf("%s: member %s at offset %d", a.path, source, b.Off)
}

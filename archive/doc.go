// Package archive reads container image archives: docker-save tarballs (legacy and Docker 25+), OCI image
// layouts as directories or tars, any of them wrapped in gzip or zstd. It finds the images, their
// manifests, configs and platforms, names the media type of a layer blob, and hands out layer blobs
// as byte ranges of the source.
//
// It must not know inodes, FUSE or union rules.
//
// # Formats
//
// Open detects the format by content, never by file name, and reports it as a Format:
//
//   - "oci-layout": a directory with index.json (and oci-layout).
//   - "oci-archive": a tar holding an OCI layout (skopeo, podman), with or without "./" prefixes and
//     directory entries.
//   - "docker-archive+oci": a tar holding an OCI layout and a manifest.json (docker save 25+, containerd
//     export). Images come from index.json; manifest.json's RepoTags name them too. When index.json lists
//     no image, manifest.json is read as a legacy archive.
//   - "docker-archive": a legacy docker-save tar: manifest.json [{Config, RepoTags, Layers, LayerSources}]
//     with files at any path; "<id>/layer.tar" may be a symlink (or hardlink) member, resolved inside the
//     archive relative to the link's directory; escapes and cycles are refused.
//   - "docker-dir": an unpacked legacy docker-save directory.
//
// A file that starts with gzip or zstd magic is opened through compression.Open and its decompressed
// bytes are read as above (Compression reports the wrapping). The stream's cache key is derived without
// reading the whole file: sha256 over a version tag, the file's identity (device, inode, mtime, ctime),
// its size and the sha256 of the first and last MiB (see outerKey); layer blobs read through it carry the
// archive file as compression.Blob.Origin, whose identity the layer cache's verified records name. The outer tar's member headers are scanned on every open (the data is skipped by
// seeking); the scan stops at 20,000 members, a tar with more is a plain tarball.
//
// A tar with none of manifest.json, index.json and oci-layout at its root (or with more members than
// that) is a plain tarball (FormatPlainTar): one image of one layer, the file itself, with a config
// synthesized (see plain.go).
//
// Inside OCI indexes, nested indexes are followed (4 levels at most); docker schema 2 manifests and
// manifest lists are accepted and converted to OCI media types; unknown media types, artifacts and
// attestation manifests (platform unknown/unknown) are skipped, not errors. A blob that is missing is an
// error only when the image that needs it is selected.
//
// # Trust
//
// The source is opened read-only and never written. Digests must be "sha256:" + 64 or "sha512:" + 128
// lowercase hex digits before they are used at all, in particular as paths (CVE-2024-3727). A document
// with both manifests and config/layers is refused (CVE-2021-41190). JSON documents are capped (4 MiB for
// indexes, manifests, manifest.json and repositories; 16 MiB for configs) and never read past the cap.
// Indexes, manifests and configs are hashed and checked against their digests; legacy configs against the
// digest their file name spells. Layer blobs are not hashed (they can be gigabytes): their size is checked
// against the descriptor and the range must lie inside the source; package index computes the diff_id
// as it reads a layer. A layer's count must equal the config's rootfs.diff_ids count. Descriptor urls are
// never fetched. Directory sources are read through os.Root, so no name or symlink leads outside them.
//
// # Selection
//
// Archive.Image takes "" (the only image), a name or tag (docker.io/ and library/ normalised, "latest"
// implied, a registry prefix such as localhost/ may be left out, a bare tag matches OCI ref.name tags and
// the tag of full names), or a digest of a manifest, index or config (image ID), full or a prefix of at
// least 12 hex digits. The platform (nil: the host's) chooses among the images of a multi-platform index;
// an explicit platform must also match a single image whose platform is known. Errors list the choices.
//
// Every error reads as one line: "archive <path>: <where>: <problem>", and errors.Is tells its kind
// (ErrFormat, ErrInvalid, ErrMissingBlob, ErrNotFound, ErrAmbiguous, ErrPlatform, ErrUnsupported,
// ErrClosed).
package archive
